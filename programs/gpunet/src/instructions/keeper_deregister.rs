//! `keeper_deregister`: an active keeper with no leases leaves the active set; its bond comes
//! back through `keeper_close` once the unbonding period has passed.
//!
//! The active set stays dense for round-robin assignment: the keeper with the highest index
//! (`last_keeper`, omitted when that is the caller) moves into the leaving keeper's index.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::KeeperDeregistered;
use crate::math::safe_add_time;
use crate::state::{CONFIG_SEED, Config, KEEPER_SEED, Keeper, KeeperStatus, NO_INDEX};

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperDeregister<'info> {
    pub authority: Signer<'info>,

    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    #[account(
        mut,
        seeds = [KEEPER_SEED, authority.key().as_ref()],
        bump = keeper.bump,
        has_one = authority @ GpunetError::WrongAuthority,
    )]
    pub keeper: Account<'info, Keeper>,

    /// The active keeper with index `active_keepers - 1`, unless that is `keeper` itself.
    #[account(mut)]
    pub last_keeper: Option<Account<'info, Keeper>>,
}

impl KeeperDeregister<'_> {
    fn validate(&self) -> Result<()> {
        self.config.require_not_paused()?;
        require!(
            self.keeper.status == KeeperStatus::Active,
            GpunetError::KeeperNotActive
        );
        require!(
            self.keeper.leases_assigned == 0,
            GpunetError::KeeperHasLeases
        );
        let last_index = self
            .config
            .active_keepers
            .checked_sub(1)
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        match &self.last_keeper {
            None => require!(
                self.keeper.index == last_index,
                GpunetError::WrongLastKeeper
            ),
            Some(last) => require!(
                last.key() != self.keeper.key()
                    && last.status == KeeperStatus::Active
                    && last.index == last_index,
                GpunetError::WrongLastKeeper
            ),
        }
        Ok(())
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<KeeperDeregister>) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let ends_at = safe_add_time(now, ctx.accounts.config.params.unbonding_period)?;

    let freed_index = ctx.accounts.keeper.index;
    if let Some(last) = ctx.accounts.last_keeper.as_mut() {
        last.index = freed_index;
        last.invariant()?;
    }
    let keeper = &mut ctx.accounts.keeper;
    keeper.index = NO_INDEX;
    keeper.status = KeeperStatus::Unbonding;
    keeper.unbonding_ends_at = ends_at;
    keeper.invariant()?;

    let config = &mut ctx.accounts.config;
    config.active_keepers = config
        .active_keepers
        .checked_sub(1)
        .ok_or_else(|| error!(GpunetError::MathOverflow))?;
    config.invariant()?;

    emit_cpi!(KeeperDeregistered {
        keeper: ctx.accounts.keeper.key(),
        authority: ctx.accounts.authority.key(),
        unbonding_ends_at: ends_at,
    });
    Ok(())
}
