//! `lease_reassign_keeper`: when the assigned keeper has missed checkpoints for longer than the
//! grace period (no checkpoint within `checkpoint_interval + grace_period`), any other active
//! keeper may take the lease over. Sequence numbers continue, so nothing can be paid twice.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::LeaseKeeperReassigned;
use crate::math::safe_add_time;
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, Keeper, KeeperStatus, LEASE_SEED, Lease, LeaseStatus,
};

#[event_cpi]
#[derive(Accounts)]
pub struct LeaseReassignKeeper<'info> {
    /// The wallet of the keeper taking over.
    pub new_keeper_authority: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        constraint = lease.keeper == old_keeper.key() @ GpunetError::WrongKeeper,
    )]
    pub lease: Account<'info, Lease>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, old_keeper.authority.as_ref()],
        bump = old_keeper.bump,
    )]
    pub old_keeper: Account<'info, Keeper>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, new_keeper_authority.key().as_ref()],
        bump = new_keeper.bump,
    )]
    pub new_keeper: Account<'info, Keeper>,
}

impl LeaseReassignKeeper<'_> {
    fn validate(&self) -> Result<()> {
        self.config.require_not_paused()?;
        require!(
            self.lease.status == LeaseStatus::Active,
            GpunetError::LeaseNotActive
        );
        require!(
            self.new_keeper.status == KeeperStatus::Active,
            GpunetError::KeeperNotActive
        );
        require_keys_neq!(
            self.new_keeper.key(),
            self.old_keeper.key(),
            GpunetError::WrongKeeper
        );
        let params = &self.config.params;
        let deadline = safe_add_time(
            safe_add_time(self.lease.last_checkpoint_at, params.checkpoint_interval)?,
            params.grace_period,
        )?;
        let now = Clock::get()?.unix_timestamp;
        require!(now > deadline, GpunetError::KeeperNotLate);
        Ok(())
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<LeaseReassignKeeper>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let old = &mut ctx.accounts.old_keeper;
    old.unassign_lease()?;
    old.invariant()?;
    let new = &mut ctx.accounts.new_keeper;
    new.assign_lease()?;
    new.invariant()?;

    let lease = &mut ctx.accounts.lease;
    lease.keeper = new.key();
    // The new keeper gets a full interval before it can itself be replaced.
    lease.last_checkpoint_at = now;
    lease.invariant()?;

    emit_cpi!(LeaseKeeperReassigned {
        lease: lease.key(),
        old_keeper: ctx.accounts.old_keeper.key(),
        new_keeper: ctx.accounts.new_keeper.key(),
    });
    Ok(())
}
