//! `lease_resize`: the user changes an active lease's GPU count without closing it. The new
//! count bills from the request (`resize_at`, now): checkpoints settle the lease at the current
//! rate up to that moment and no further, and the checkpoint that reaches it applies the new
//! count (`Lease::apply_resize`), restarting the rate's segment there. Nobody can make either
//! side pay the other rate for time already worked: the provider is paid the old count up to
//! the request, the user pays the new count only after it.
//!
//! Escrow moves now so that the lease stays funded until the same time
//! (`Lease::budget_for_resize`): a grow takes the difference from the user (at most
//! `max_deposit`, so a stranger's top-up just before cannot make the user pay more than it
//! signed for); a shrink refunds the unspent escrow the GPUs it gives back would have used
//! (`Lease::withdrawn`).
//!
//! A grow takes GPUs of the same provider at the lease's price (refused when the provider now
//! asks more) and locks the configured stake for them at once, so that nobody else can take
//! them meanwhile; a shrink's GPUs and their share of the stake are released when it applies.
//! One resize at a time; a slash or the close cancels a pending one (a grow's booking is
//! released).

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::LeaseResizeRequested;
use crate::math::safe_add;
use crate::state::{
    CONFIG_SEED, Config, LEASE_SEED, LEASE_VAULT_SEED, Lease, LeaseStatus, PROVIDER_SEED, Provider,
};
use crate::transfers::{pay_in, pay_out};

/// A resize request.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct LeaseResizeArgs {
    /// The GPU count wanted: at least one, not the current one.
    pub gpus: u16,
    /// The most escrow a grow may take from the user (ignored by a shrink).
    pub max_deposit: u64,
}

#[event_cpi]
#[derive(Accounts)]
pub struct LeaseResize<'info> {
    /// The lease's user.
    pub user: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, user.key().as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        has_one = user @ GpunetError::WrongUser,
        has_one = provider @ GpunetError::WrongProvider,
    )]
    pub lease: Box<Account<'info, Lease>>,

    #[account(
        mut,
        seeds = [LEASE_VAULT_SEED, lease.key().as_ref()],
        bump = lease.vault_bump,
    )]
    pub vault: Box<Account<'info, TokenAccount>>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Box<Account<'info, Provider>>,

    /// The user's token account: pays a grow's deposit, receives a shrink's refund.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == user.key() @ GpunetError::WrongTokenOwner,
    )]
    pub user_token: Box<Account<'info, TokenAccount>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
}

impl LeaseResize<'_> {
    fn validate(&self, args: &LeaseResizeArgs) -> Result<()> {
        self.config.require_not_paused()?;
        let lease = &self.lease;
        require!(
            lease.status == LeaseStatus::Active,
            GpunetError::LeaseNotActive
        );
        require!(!lease.resize_pending(), GpunetError::ResizePending);
        require!(
            args.gpus > 0 && args.gpus != lease.gpus,
            GpunetError::InvalidResize
        );
        let now = Clock::get()?.unix_timestamp;
        let deadline = lease.expires_at(self.config.paused_seconds_at(now)?)?;
        require!(now <= deadline, GpunetError::LeaseExpired);
        if args.gpus > lease.gpus {
            // New GPUs at the lease's price: refused when the provider now asks more.
            let more = args.gpus - lease.gpus;
            self.provider.check_can_lease(
                &self.config,
                more,
                lease.price_per_gpu_second,
                self.stake_to_lock(more)?,
            )?;
        }
        lease.check_vault(self.vault.amount)
    }

    /// Stake locked for `gpus` more GPUs: the per-GPU minimum of the provider's class, as
    /// `lease_open` locks it.
    fn stake_to_lock(&self, gpus: u16) -> Result<u64> {
        self.config.min_stake(self.provider.gpu.class, gpus)
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<LeaseResize>, args: LeaseResizeArgs) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let lease = &ctx.accounts.lease;
    let from = lease.gpus;
    let grow = args.gpus > from;
    let budget = lease.segment_budget()?;
    let needed = lease.budget_for_resize(args.gpus, now)?;
    let (deposit, refund) = if grow {
        (needed.saturating_sub(budget), 0)
    } else {
        (0, budget.saturating_sub(needed))
    };
    require!(deposit <= args.max_deposit, GpunetError::DepositAboveMax);
    let stake = if grow {
        ctx.accounts.stake_to_lock(args.gpus - from)?
    } else {
        0
    };

    let a = &ctx.accounts;
    if deposit > 0 {
        pay_in(
            &a.token_program,
            &a.user_token,
            &a.vault.to_account_info(),
            &a.user,
            &a.mint,
            deposit,
        )?;
    }
    let user = a.lease.user;
    let nonce = a.lease.nonce.to_le_bytes();
    let seeds: &[&[u8]] = &[LEASE_SEED, user.as_ref(), &nonce, &[a.lease.bump]];
    pay_out(
        &a.token_program,
        &a.vault,
        &a.user_token,
        &a.lease.to_account_info(),
        &a.mint,
        refund,
        &[seeds],
    )?;

    let lease = &mut ctx.accounts.lease;
    lease.funded = safe_add(lease.funded, deposit)?;
    lease.withdrawn = safe_add(lease.withdrawn, refund)?;
    lease.pending_gpus = args.gpus;
    lease.resize_at = now;
    lease.pending_stake = stake;
    // Settled up to now already (a checkpoint in this very second): the new count bills now.
    let (released_gpus, released_stake) = if lease.paid_until == now {
        lease.apply_resize()?
    } else {
        (0, 0)
    };
    lease.invariant()?;
    let funded_until = lease.funded_until()?;
    let applied = !lease.resize_pending();

    let provider = &mut ctx.accounts.provider;
    if grow {
        provider.gpus_leased = provider
            .gpus_leased
            .checked_add(args.gpus - from)
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        provider.locked = safe_add(provider.locked, stake)?;
    }
    provider.release_gpus(released_gpus, released_stake)?;
    provider.invariant()?;

    ctx.accounts.vault.reload()?;
    ctx.accounts.lease.check_vault(ctx.accounts.vault.amount)?;

    emit_cpi!(LeaseResizeRequested {
        lease: ctx.accounts.lease.key(),
        gpus_from: from,
        gpus_to: args.gpus,
        resize_at: now,
        deposit,
        refund,
        stake_booked: stake,
        funded_until,
        applied,
    });
    Ok(())
}
