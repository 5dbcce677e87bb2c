//! `lease_close`: final settlement. Only verified (checkpointed) time is ever paid, so closing
//! pays nothing more: whatever is left in escrow goes back to the user, the provider's stake
//! lock and GPUs are released, and the lease and its vault are closed with their rent returned
//! to whoever paid it. The user may close at any time; anyone may close a lease that a slash
//! ended or whose funds ran out longer ago than the grace period.
//!
//! The provider's exposure to an early close is what has not been checkpointed yet: one
//! checkpoint interval with a punctual keeper, up to interval + grace with a late one (after
//! that the lease passes to a successor keeper), plus any time the protocol was paused.
//!
//! An `Ended` lease (slashed) can always be closed: the slash already released the provider's
//! lock and the keeper's assignment, so neither account is needed (either may have been closed
//! since). A `Pending` lease has no keeper yet. Closing works while the protocol is paused:
//! exits never freeze.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::LeaseClosed;
use crate::math::safe_add;
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, Keeper, LEASE_SEED, LEASE_VAULT_SEED, Lease, LeaseStatus,
    PROVIDER_SEED, Provider,
};
use crate::transfers::{close_vault, pay_out};

#[event_cpi]
#[derive(Accounts)]
pub struct LeaseClose<'info> {
    /// The user, or anyone once the lease is closable by anyone.
    pub closer: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        close = rent_payer,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        has_one = rent_payer @ GpunetError::WrongRentPayer,
    )]
    pub lease: Box<Account<'info, Lease>>,

    #[account(
        mut,
        seeds = [LEASE_VAULT_SEED, lease.key().as_ref()],
        bump = lease.vault_bump,
    )]
    pub vault: Box<Account<'info, TokenAccount>>,

    /// The user's token account: receives the refund.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == lease.user @ GpunetError::WrongUser,
    )]
    pub user_token: Box<Account<'info, TokenAccount>>,

    /// CHECK: receives the rent of the lease and its vault; checked against `lease.rent_payer`.
    #[account(mut)]
    pub rent_payer: UncheckedAccount<'info>,

    /// The lease's provider; required unless the lease is `Ended`.
    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Option<Box<Account<'info, Provider>>>,

    /// The lease's keeper; required when the lease is `Active`.
    #[account(
        mut,
        seeds = [KEEPER_SEED, keeper.authority.as_ref()],
        bump = keeper.bump,
    )]
    pub keeper: Option<Box<Account<'info, Keeper>>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
}

impl LeaseClose<'_> {
    fn validate(&self) -> Result<()> {
        // No pause check: closing is an exit.
        let lease = &self.lease;
        if self.closer.key() != lease.user {
            let now = Clock::get()?.unix_timestamp;
            require!(
                lease.closable_by_anyone(now, self.config.paused_seconds_at(now)?)?,
                GpunetError::NotClosableYet
            );
        }
        if lease.status != LeaseStatus::Ended {
            let provider = self
                .provider
                .as_ref()
                .ok_or_else(|| error!(GpunetError::WrongProvider))?;
            require_keys_eq!(provider.key(), lease.provider, GpunetError::WrongProvider);
        }
        if lease.status == LeaseStatus::Active {
            let keeper = self
                .keeper
                .as_ref()
                .ok_or_else(|| error!(GpunetError::WrongKeeper))?;
            require_keys_eq!(keeper.key(), lease.keeper, GpunetError::WrongKeeper);
        }
        lease.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<LeaseClose>) -> Result<()> {
    let lease_key = ctx.accounts.lease.key();
    let user = ctx.accounts.lease.user;
    let nonce = ctx.accounts.lease.nonce.to_le_bytes();
    let seeds: &[&[u8]] = &[
        LEASE_SEED,
        user.as_ref(),
        &nonce,
        &[ctx.accounts.lease.bump],
    ];
    let lease_info = ctx.accounts.lease.to_account_info();
    let due = ctx.accounts.lease.escrow_due()?;
    // The whole balance goes back: what the books say is left, plus any gift to the vault.
    let refund = ctx.accounts.vault.amount;

    let a = &ctx.accounts;
    pay_out(
        &a.token_program,
        &a.vault,
        &a.user_token,
        &lease_info,
        &a.mint,
        refund,
        &[seeds],
    )?;
    close_vault(
        &a.token_program,
        &a.vault,
        &a.rent_payer.to_account_info(),
        &lease_info,
        &[seeds],
    )?;

    let lease = &mut ctx.accounts.lease;
    lease.refunded = safe_add(lease.refunded, due)?;
    // A pending grow booked GPUs and stake on the provider: they go back with the lease's.
    let (booked_gpus, booked_stake) = lease.cancel_resize();
    lease.invariant()?;
    require!(lease.escrow_due()? == 0, GpunetError::InvariantViolated);
    let status = lease.status;
    let gpus = lease
        .gpus
        .checked_add(booked_gpus)
        .ok_or_else(|| error!(GpunetError::MathOverflow))?;
    let stake_locked = safe_add(lease.stake_locked, booked_stake)?;

    // A slash already released the provider's lock and the keeper's assignment; a pending
    // lease holds GPUs and stake but has no keeper yet. `validate` checked both accounts.
    if status != LeaseStatus::Ended
        && let Some(provider) = ctx.accounts.provider.as_mut()
    {
        provider.release_lease(gpus, stake_locked)?;
        provider.invariant()?;
    }
    if status == LeaseStatus::Active
        && let Some(keeper) = ctx.accounts.keeper.as_mut()
    {
        keeper.unassign_lease()?;
        keeper.leases_served = safe_add(keeper.leases_served, 1)?;
        keeper.invariant()?;
    }

    emit_cpi!(LeaseClosed {
        lease: lease_key,
        closer: ctx.accounts.closer.key(),
        refunded: refund,
        paid_provider: ctx.accounts.lease.paid_provider,
        paid_protocol: ctx.accounts.lease.paid_protocol,
        paid_keeper: ctx.accounts.lease.paid_keeper,
        funded: ctx.accounts.lease.funded,
    });
    Ok(())
}
