//! `keeper_deregister`: a keeper with no leases left — active, or draining once its leases have
//! passed to their successors — starts unbonding; its bond comes back through `keeper_close`
//! after the unbonding period, during which `keeper_slash` can still reach it. Works while the
//! protocol is paused (an exit).
//!
//! An active keeper leaves the active set here (swap-remove: `last_keeper`, the active keeper
//! with the highest index, omitted when that is the caller, moves into its index).

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::KeeperDeregistered;
use crate::math::safe_add_time;
use crate::state::{CONFIG_SEED, Config, KEEPER_SEED, Keeper, KeeperStatus};

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperDeregister<'info> {
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

    /// The active keeper with index `active_keepers - 1`, unless that is `keeper` itself (or
    /// `keeper` is draining and so no longer in the set).
    #[account(mut)]
    pub last_keeper: Option<Account<'info, Keeper>>,
}

impl KeeperDeregister<'_> {
    fn validate(&self) -> Result<()> {
        require!(
            matches!(
                self.keeper.status,
                KeeperStatus::Active | KeeperStatus::Draining
            ),
            GpunetError::KeeperNotServing
        );
        require!(
            self.keeper.leases_assigned == 0,
            GpunetError::KeeperHasLeases
        );
        Ok(())
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<KeeperDeregister>) -> Result<()> {
    let clock = Clock::get()?;
    let ends_at = safe_add_time(
        clock.unix_timestamp,
        ctx.accounts.config.params.unbonding_period,
    )?;
    let keeper_key = ctx.accounts.keeper.key();
    let a = &mut *ctx.accounts;
    if a.keeper.status == KeeperStatus::Active {
        a.keeper.leave_active_set(
            &keeper_key,
            &mut a.config,
            a.last_keeper.as_mut(),
            clock.slot,
        )?;
    }
    let keeper = &mut a.keeper;
    keeper.status = KeeperStatus::Unbonding;
    keeper.unbonding_ends_at = ends_at;
    keeper.invariant()?;
    a.config.invariant()?;

    emit_cpi!(KeeperDeregistered {
        keeper: keeper_key,
        authority: ctx.accounts.authority.key(),
        unbonding_ends_at: ends_at,
    });
    Ok(())
}
