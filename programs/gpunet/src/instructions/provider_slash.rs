//! `provider_slash`: at least `slash_quorum` members of the lease's verification committee,
//! each signing the transaction, slash `gpus` of the lease's GPUs (those whose workers failed):
//! the lease's slash fraction of the stake those GPUs lock (all of `stake_locked` when every GPU
//! failed, in proportion otherwise). The user is compensated up to what it paid out of escrow
//! for the lease (never more: slashing a lease one opened is never a profit); the rest goes to
//! the treasury. The provider is jailed for the configured jail period (no new leases).
//!
//! When every GPU failed the lease ends (the user then closes it for the refund of unspent
//! escrow). Otherwise it goes on with the healthy GPUs ([`Lease::shrink`]): from `paid_until`
//! it bills the GPUs left, the escrow not yet paid out buys time at that smaller rate, and the
//! stake of the slashed GPUs leaves the lease (what the slash did not take is unlocked).
//!
//! A slash cancels a pending `lease_resize` (a grow's booked GPUs and stake go back to the
//! provider; a shrink's refund stays with the user, and the lease's escrow buys time at the
//! rate it has after the slash).
//!
//! Co-signers come in `remaining_accounts` as pairs `(keeper wallet [signer], keeper account)`
//! (`quorum.rs`). The committee was drawn at random from the active keepers, so a party that
//! registers many keepers controls a slash only in proportion to its share of the bonds.
use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::{LeaseResized, ProviderSlashed};
use crate::math::{compensation, safe_add, safe_add_time, safe_sub, split_slash, stake_share};
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, Keeper, LEASE_SEED, Lease, LeaseStatus, PROVIDER_SEED,
    PROVIDER_VAULT_SEED, Provider, ProviderStatus,
};
use crate::transfers::pay_out;

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderSlash<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        has_one = provider @ GpunetError::WrongProvider,
        has_one = keeper @ GpunetError::WrongKeeper,
    )]
    pub lease: Box<Account<'info, Lease>>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Box<Account<'info, Provider>>,

    #[account(
        mut,
        seeds = [PROVIDER_VAULT_SEED, provider.key().as_ref()],
        bump = provider.vault_bump,
    )]
    pub provider_vault: Box<Account<'info, TokenAccount>>,

    /// The lease's assigned keeper (its assignment ends with the lease).
    #[account(
        mut,
        seeds = [KEEPER_SEED, keeper.authority.as_ref()],
        bump = keeper.bump,
    )]
    pub keeper: Box<Account<'info, Keeper>>,

    /// The user's token account: receives the compensation.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == lease.user @ GpunetError::WrongUser,
    )]
    pub user_token: Box<Account<'info, TokenAccount>>,

    #[account(mut, address = config.treasury @ GpunetError::WrongTreasury)]
    pub treasury: Box<Account<'info, TokenAccount>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
}

impl ProviderSlash<'_> {
    fn validate(&self) -> Result<()> {
        self.config.require_not_paused()?;
        require!(
            self.lease.status == LeaseStatus::Active,
            GpunetError::LeaseNotActive
        );
        self.provider.check_vault(self.provider_vault.amount)
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler<'info>(
    ctx: Context<'info, ProviderSlash<'info>>,
    evidence_digest: [u8; 32],
    gpus: u16,
) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let signers = crate::quorum::check(ctx.remaining_accounts, &ctx.accounts.lease, None)?;
    // A slash cancels a pending resize; a pending grow's booking goes back to the provider.
    let cancelled = ctx.accounts.lease.resize_pending().then(|| {
        let (gpus, stake) = ctx.accounts.lease.cancel_resize();
        LeaseResized {
            lease: ctx.accounts.lease.key(),
            gpus_from: ctx.accounts.lease.gpus,
            gpus: ctx.accounts.lease.gpus,
            rate_since: ctx.accounts.lease.rate_since,
            stake_locked: ctx.accounts.lease.stake_locked,
            stake_released: stake,
            gpus_released: gpus,
            cancelled: true,
        }
    });
    if let Some(c) = &cancelled {
        ctx.accounts
            .provider
            .release_gpus(c.gpus_released, c.stake_released)?;
    }
    let lease = &ctx.accounts.lease;
    require!(
        gpus > 0 && gpus <= lease.gpus,
        GpunetError::InvalidSlashGpus
    );
    // One slash per checkpoint: the evidence of a failed period cannot be used twice.
    require!(
        lease.slashed_sequence <= lease.last_sequence,
        GpunetError::AlreadySlashed
    );
    let ends = gpus == lease.gpus;
    let terms = lease.terms;
    let stake_locked = lease.stake_locked;
    // The stake the slashed GPUs lock: what stays locked for the healthy ones is the same
    // share `Lease::shrink` keeps.
    let stake_slashed_gpus = safe_sub(
        stake_locked,
        stake_share(stake_locked, lease.gpus - gpus, lease.gpus)?,
    )?;
    let split = split_slash(
        stake_slashed_gpus,
        terms.slash_fraction_bps,
        terms.slash_treasury_bps,
    )?;
    let to_user = compensation(
        split.user,
        lease.paid_by_user()?,
        lease.compensation,
        terms.slash_compensation_bps,
    )?;
    let to_treasury = safe_sub(split.total, to_user)?;
    let jailed_until = safe_add_time(now, ctx.accounts.config.params.jail_period)?;

    let authority = ctx.accounts.provider.authority;
    let seeds: &[&[u8]] = &[
        PROVIDER_SEED,
        authority.as_ref(),
        &[ctx.accounts.provider.bump],
    ];
    let provider_info = ctx.accounts.provider.to_account_info();
    let a = &ctx.accounts;
    for (to, amount) in [(&a.user_token, to_user), (&a.treasury, to_treasury)] {
        pay_out(
            &a.token_program,
            &a.provider_vault,
            to,
            &provider_info,
            &a.mint,
            amount,
            &[seeds],
        )?;
    }

    let lease = &mut ctx.accounts.lease;
    lease.compensation = safe_add(lease.compensation, to_user)?;
    lease.slashed_sequence = safe_add(lease.last_sequence, 1)?;
    let released = if ends {
        lease.status = LeaseStatus::Ended;
        stake_locked
    } else {
        lease.shrink(gpus)?
    };
    lease.invariant()?;
    let gpus_left = if ends { 0 } else { lease.gpus };

    let provider = &mut ctx.accounts.provider;
    provider.staked = safe_sub(provider.staked, split.total)?;
    if ends {
        provider.release_lease(gpus, released)?;
    } else {
        provider.release_gpus(gpus, released)?;
    }
    provider.slashed_total = safe_add(provider.slashed_total, split.total)?;
    provider.status = ProviderStatus::Jailed;
    provider.jailed_until = jailed_until;
    provider.invariant()?;

    if ends {
        let keeper = &mut ctx.accounts.keeper;
        keeper.unassign_lease()?;
        keeper.invariant()?;
    }

    ctx.accounts.provider_vault.reload()?;
    ctx.accounts
        .provider
        .check_vault(ctx.accounts.provider_vault.amount)?;

    emit_cpi!(ProviderSlashed {
        lease: ctx.accounts.lease.key(),
        provider: ctx.accounts.provider.key(),
        evidence_digest,
        gpus,
        gpus_left,
        slashed: split.total,
        to_user,
        to_treasury,
        keepers: signers,
        jailed_until,
    });
    if let Some(c) = cancelled {
        emit_cpi!(c);
    }
    Ok(())
}
