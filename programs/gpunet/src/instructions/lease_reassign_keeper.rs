//! `lease_reassign_keeper`: the lease passes to its successor keeper — the next active member
//! of its committee after the current keeper, in committee order — when the current keeper has
//! missed checkpoints for longer than the lease's interval + grace (paused time not counted), or
//! at once when it is no longer active (draining, or slashed). The successor signs; the members
//! it skips come in `remaining_accounts`, in committee order, and must each be inactive (or
//! closed), so the successor is deterministic and nobody picks their own judge. Sequence numbers
//! continue, so nothing can be paid twice.

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
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
        constraint = lease.keeper == old_keeper.key() @ GpunetError::WrongKeeper,
    )]
    pub lease: Box<Account<'info, Lease>>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, old_keeper.authority.as_ref()],
        bump = old_keeper.bump,
    )]
    pub old_keeper: Box<Account<'info, Keeper>>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, new_keeper_authority.key().as_ref()],
        bump = new_keeper.bump,
    )]
    pub new_keeper: Box<Account<'info, Keeper>>,
}

impl<'info> LeaseReassignKeeper<'info> {
    fn validate(&self, skipped: &'info [AccountInfo<'info>]) -> Result<()> {
        self.config.require_not_paused()?;
        let lease = &self.lease;
        require!(
            lease.status == LeaseStatus::Active,
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
        if self.old_keeper.status == KeeperStatus::Active {
            let now = Clock::get()?.unix_timestamp;
            let paused = lease.paused_since_mark(self.config.paused_seconds_at(now)?);
            let deadline = safe_add_time(
                safe_add_time(lease.last_checkpoint_at, lease.terms.checkpoint_interval)?,
                safe_add_time(lease.terms.grace_period, paused)?,
            )?;
            require!(now > deadline, GpunetError::KeeperNotLate);
        }
        check_successor(
            lease,
            &self.old_keeper.key(),
            &self.new_keeper.key(),
            skipped,
        )
    }
}

/// The successor of `old` on `lease`'s committee is `new`: every member between them in
/// committee order (cyclic) is in `skipped`, in that order, and is not an active keeper.
fn check_successor<'info>(
    lease: &Lease,
    old: &Pubkey,
    new: &Pubkey,
    skipped: &'info [AccountInfo<'info>],
) -> Result<()> {
    let members = lease.committee();
    let n = members.len();
    let from = members
        .iter()
        .position(|m| m == old)
        .ok_or_else(|| error!(GpunetError::InvariantViolated))?;
    let to = members
        .iter()
        .position(|m| m == new)
        .ok_or_else(|| error!(GpunetError::NotSuccessor))?;
    let between = (to + n - from - 1) % n;
    require!(skipped.len() == between, GpunetError::NotSuccessor);
    for (k, info) in skipped.iter().enumerate() {
        require_keys_eq!(
            *info.key,
            members[(from + 1 + k) % n],
            GpunetError::NotSuccessor
        );
        // A closed keeper account is no longer owned by this program: not active.
        if info.owner == &crate::ID && !info.data_is_empty() {
            let keeper = Keeper::load(info, GpunetError::NotSuccessor)?;
            require!(
                keeper.status != KeeperStatus::Active,
                GpunetError::NotSuccessor
            );
        }
    }
    Ok(())
}

#[access_control(ctx.accounts.validate(ctx.remaining_accounts))]
pub fn handler<'info>(ctx: Context<'info, LeaseReassignKeeper<'info>>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let paused_now = ctx.accounts.config.paused_seconds_at(now)?;
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
    lease.paused_mark = paused_now;
    lease.invariant()?;

    emit_cpi!(LeaseKeeperReassigned {
        lease: lease.key(),
        old_keeper: ctx.accounts.old_keeper.key(),
        new_keeper: ctx.accounts.new_keeper.key(),
    });
    Ok(())
}
