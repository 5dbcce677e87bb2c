//! `keeper_update`: a keeper changes the gRPC endpoint it publishes (users and workers find
//! their keeper through it). Any status; works while paused (it moves no value).

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::KeeperUpdated;
use crate::state::{KEEPER_SEED, Keeper, validate_endpoint};

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperUpdate<'info> {
    pub authority: Signer<'info>,

    /// Sized at registration for the longest endpoint, so no resize is needed.
    #[account(
        mut,
        seeds = [KEEPER_SEED, authority.key().as_ref()],
        bump = keeper.bump,
        has_one = authority @ GpunetError::WrongAuthority,
    )]
    pub keeper: Box<Account<'info, Keeper>>,
}

pub fn handler(ctx: Context<KeeperUpdate>, endpoint: String) -> Result<()> {
    validate_endpoint(&endpoint)?;
    let keeper = &mut ctx.accounts.keeper;
    keeper.endpoint = endpoint.clone();
    keeper.invariant()?;
    emit_cpi!(KeeperUpdated {
        keeper: keeper.key(),
        endpoint,
    });
    Ok(())
}
