//! `lease_close`: final settlement. Only verified (checkpointed) time is ever paid, so closing
//! pays nothing more: whatever is left in escrow goes back to the user, the provider's stake
//! lock and GPUs are released, and the lease and its vault are closed with their rent returned
//! to whoever paid it. The user may close at any time; anyone may close a lease that a slash
//! ended or whose funds ran out longer ago than the grace period.
//!
//! The provider's exposure to an early close is bounded by one checkpoint interval: keepers
//! checkpoint up to the present every interval.

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
    pub config: Account<'info, Config>,

    #[account(
        mut,
        close = rent_payer,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        has_one = keeper @ GpunetError::WrongKeeper,
        has_one = provider @ GpunetError::WrongProvider,
        has_one = rent_payer @ GpunetError::WrongRentPayer,
    )]
    pub lease: Account<'info, Lease>,

    #[account(
        mut,
        seeds = [LEASE_VAULT_SEED, lease.key().as_ref()],
        bump = lease.vault_bump,
    )]
    pub vault: Account<'info, TokenAccount>,

    /// The user's token account: receives the refund.
    #[account(
        mut,
        constraint = user_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = user_token.owner == lease.user @ GpunetError::WrongUser,
    )]
    pub user_token: Account<'info, TokenAccount>,

    /// CHECK: receives the rent of the lease and its vault; checked against `lease.rent_payer`.
    #[account(mut)]
    pub rent_payer: UncheckedAccount<'info>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, provider.authority.as_ref()],
        bump = provider.bump,
    )]
    pub provider: Account<'info, Provider>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, keeper.authority.as_ref()],
        bump = keeper.bump,
    )]
    pub keeper: Account<'info, Keeper>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl LeaseClose<'_> {
    fn validate(&self) -> Result<()> {
        self.config.require_not_paused()?;
        if self.closer.key() != self.lease.user {
            let now = Clock::get()?.unix_timestamp;
            require!(
                self.lease
                    .closable_by_anyone(now, self.config.params.grace_period)?,
                GpunetError::NotClosableYet
            );
        }
        self.lease.check_vault(self.vault.amount)
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
    lease.invariant()?;
    require!(lease.escrow_due()? == 0, GpunetError::InvariantViolated);
    let was_active = lease.status == LeaseStatus::Active;
    let (gpus, stake_locked) = (lease.gpus, lease.stake_locked);

    // A slash already released the provider's lock and the keeper's assignment.
    if was_active {
        let provider = &mut ctx.accounts.provider;
        provider.release_lease(gpus, stake_locked)?;
        provider.invariant()?;

        let keeper = &mut ctx.accounts.keeper;
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
