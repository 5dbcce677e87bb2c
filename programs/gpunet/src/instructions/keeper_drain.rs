//! `keeper_drain`: an active keeper stops taking new leases. It leaves the active set at once
//! (so no new committee draws it) and stops posting checkpoints; each of its leases passes to
//! the lease's successor keeper (`lease_reassign_keeper`, allowed at once for a draining
//! keeper). When none is left it deregisters. Works while the protocol is paused (an exit).
//!
//! `last_keeper` is the active keeper with the highest index, omitted when that is the caller.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::KeeperDraining;
use crate::state::{CONFIG_SEED, Config, KEEPER_SEED, Keeper, KeeperStatus};

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperDrain<'info> {
    pub authority: Signer<'info>,

    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, authority.key().as_ref()],
        bump = keeper.bump,
        has_one = authority @ GpunetError::WrongAuthority,
    )]
    pub keeper: Box<Account<'info, Keeper>>,

    /// The active keeper with index `active_keepers - 1`, unless that is `keeper` itself.
    #[account(mut)]
    pub last_keeper: Option<Account<'info, Keeper>>,
}

pub fn handler(ctx: Context<KeeperDrain>) -> Result<()> {
    let slot = Clock::get()?.slot;
    let keeper_key = ctx.accounts.keeper.key();
    let a = &mut *ctx.accounts;
    a.keeper
        .leave_active_set(&keeper_key, &mut a.config, a.last_keeper.as_mut(), slot)?;
    a.keeper.status = KeeperStatus::Draining;
    a.keeper.invariant()?;
    a.config.invariant()?;

    emit_cpi!(KeeperDraining {
        keeper: keeper_key,
        leases_assigned: ctx.accounts.keeper.leases_assigned,
    });
    Ok(())
}
