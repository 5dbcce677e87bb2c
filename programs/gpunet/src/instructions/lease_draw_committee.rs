//! `lease_draw_committee`: anyone (the user's SDK, any keeper) draws a pending lease's
//! verification committee from the hash of the first slot after both its open and the last
//! change to the active keeper set (`committee.rs` says why that hash). The caller passes the
//! drawn keeper accounts, in draw order, in `remaining_accounts` (the SDK computes them with
//! the same functions); the program recomputes the draw and refuses any other list. The first
//! member posts the checkpoints; billing starts now.

use anchor_lang::prelude::*;

use crate::committee;
use crate::error::GpunetError;
use crate::events::LeaseCommitteeDrawn;
use crate::state::{
    CONFIG_SEED, Config, Keeper, KeeperStatus, LEASE_SEED, Lease, LeaseStatus, MAX_COMMITTEE,
};

#[event_cpi]
#[derive(Accounts)]
pub struct LeaseDrawCommittee<'info> {
    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [LEASE_SEED, lease.user.as_ref(), &lease.nonce.to_le_bytes()],
        bump = lease.bump,
    )]
    pub lease: Box<Account<'info, Lease>>,

    /// CHECK: the SlotHashes sysvar (address checked); read as raw bytes because the runtime
    /// refuses to deserialise it whole.
    #[account(address = committee::SLOT_HASHES_ID @ GpunetError::WrongSlotHashes)]
    pub slot_hashes: UncheckedAccount<'info>,
}

impl LeaseDrawCommittee<'_> {
    fn validate(&self) -> Result<()> {
        self.config.require_not_paused()?;
        require!(
            self.lease.status == LeaseStatus::Pending,
            GpunetError::LeaseNotPending
        );
        require!(self.config.active_keepers > 0, GpunetError::NoActiveKeeper);
        Ok(())
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler<'info>(ctx: Context<'info, LeaseDrawCommittee<'info>>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let lease_key = ctx.accounts.lease.key();
    let floor = ctx
        .accounts
        .lease
        .opened_slot
        .max(ctx.accounts.config.keeper_set_changed_slot);
    let (slot, slot_hash) = {
        let data = ctx.accounts.slot_hashes.try_borrow_data()?;
        committee::seed_slot(&data, floor)?
    };
    let seed = committee::seed(&lease_key, slot, &slot_hash);
    let drawn = committee::draw(
        &seed,
        ctx.accounts.config.active_keepers,
        ctx.accounts.lease.terms.committee_size,
    );

    let remaining = ctx.remaining_accounts;
    require!(
        remaining.len() == drawn.len() && drawn.len() <= MAX_COMMITTEE,
        GpunetError::CommitteeMismatch
    );
    let mut members = [Pubkey::default(); MAX_COMMITTEE];
    for (i, (info, index)) in remaining.iter().zip(&drawn).enumerate() {
        let keeper = Keeper::load(info, GpunetError::CommitteeMismatch)?;
        require!(
            keeper.status == KeeperStatus::Active && keeper.index == *index,
            GpunetError::CommitteeMismatch
        );
        members[i] = info.key();
    }
    // The first member posts the checkpoints.
    let mut primary = Keeper::load(&remaining[0], GpunetError::CommitteeMismatch)?;
    require!(remaining[0].is_writable, GpunetError::CommitteeMismatch);
    primary.assign_lease()?;
    primary.invariant()?;
    primary.exit(&crate::ID)?;

    let paused_now = ctx.accounts.config.paused_seconds_at(now)?;
    let lease = &mut ctx.accounts.lease;
    lease.committee = members;
    lease.committee_len = drawn.len() as u8;
    lease.keeper = members[0];
    lease.status = LeaseStatus::Active;
    lease.start = now;
    lease.paid_until = now;
    lease.last_checkpoint_at = now;
    lease.paused_mark = paused_now;
    lease.invariant()?;

    emit_cpi!(LeaseCommitteeDrawn {
        lease: lease_key,
        slot,
        slot_hash,
        committee: lease.committee().to_vec(),
        start: now,
        funded_until: lease.funded_until()?,
    });
    Ok(())
}
