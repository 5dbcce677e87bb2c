//! `lease_top_up`: anyone (the user, or a dApp paying for its user) adds funds to a lease's
//! escrow, extending it. A lease that ran out of funds is held for the grace period and
//! resumes when topped up within it; the held time is billed, since the provider kept the GPUs
//! reserved. After the grace period (extended by paused time) the lease can only be closed.
//! Top-ups work while the protocol is paused, so a pause never lets a lease run out.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::LeaseToppedUp;
use crate::math::safe_add;
use crate::state::{CONFIG_SEED, Config, LEASE_SEED, LEASE_VAULT_SEED, Lease, LeaseStatus};
use crate::transfers::pay_in;

#[event_cpi]
#[derive(Accounts)]
pub struct LeaseTopUp<'info> {
    /// Whoever pays; signs for `funder_token`.
    pub funder: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
    )]
    pub lease: Box<Account<'info, Lease>>,

    #[account(
        mut,
        seeds = [LEASE_VAULT_SEED, lease.key().as_ref()],
        bump = lease.vault_bump,
    )]
    pub vault: Account<'info, TokenAccount>,

    #[account(
        mut,
        constraint = funder_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = funder_token.owner == funder.key() @ GpunetError::WrongTokenOwner,
    )]
    pub funder_token: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl LeaseTopUp<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        // No pause check: a pause must not make leases expire.
        require!(amount > 0, GpunetError::ZeroAmount);
        require!(
            self.lease.status != LeaseStatus::Ended,
            GpunetError::LeaseNotActive
        );
        let now = Clock::get()?.unix_timestamp;
        let deadline = self.lease.expires_at(self.config.paused_seconds_at(now)?)?;
        require!(now <= deadline, GpunetError::LeaseExpired);
        self.lease.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate(amount))]
pub fn handler(ctx: Context<LeaseTopUp>, amount: u64) -> Result<()> {
    let funded = safe_add(ctx.accounts.lease.funded, amount)?;
    pay_in(
        &ctx.accounts.token_program,
        &ctx.accounts.funder_token,
        &ctx.accounts.vault.to_account_info(),
        &ctx.accounts.funder,
        &ctx.accounts.mint,
        amount,
    )?;

    let lease = &mut ctx.accounts.lease;
    lease.funded = funded;
    lease.invariant()?;
    let funded_until = lease.funded_until()?;
    ctx.accounts.vault.reload()?;
    ctx.accounts.lease.check_vault(ctx.accounts.vault.amount)?;

    emit_cpi!(LeaseToppedUp {
        lease: ctx.accounts.lease.key(),
        funder: ctx.accounts.funder.key(),
        amount,
        funded,
        funded_until,
    });
    Ok(())
}
