//! `provider_unstake_request`: starts unbonding `amount` of free stake. Stake that active
//! leases lock cannot be unbonded. Unbonding stake is not slashable (a slash takes only
//! locked stake, which can never unbond); a further request adds to it and restarts the period.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::ProviderUnstakeRequested;
use crate::math::{safe_add, safe_add_time, safe_sub};
use crate::state::{CONFIG_SEED, Config, PROVIDER_SEED, Provider};

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderUnstakeRequest<'info> {
    pub authority: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    #[account(
        mut,
        seeds = [PROVIDER_SEED, authority.key().as_ref()],
        bump = provider.bump,
        has_one = authority @ GpunetError::WrongAuthority,
    )]
    pub provider: Account<'info, Provider>,
}

impl ProviderUnstakeRequest<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        // No pause check: an exit.
        require!(amount > 0, GpunetError::ZeroAmount);
        require!(
            amount <= self.provider.staked,
            GpunetError::InsufficientStake
        );
        require!(
            amount <= self.provider.free_stake()?,
            GpunetError::StakeLocked
        );
        Ok(())
    }
}

#[access_control(ctx.accounts.validate(amount))]
pub fn handler(ctx: Context<ProviderUnstakeRequest>, amount: u64) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let ends_at = safe_add_time(now, ctx.accounts.config.params.unbonding_period)?;

    let provider = &mut ctx.accounts.provider;
    provider.staked = safe_sub(provider.staked, amount)?;
    provider.unbonding = safe_add(provider.unbonding, amount)?;
    provider.unbonding_ends_at = ends_at;
    provider.refresh_status();
    provider.invariant()?;

    emit_cpi!(ProviderUnstakeRequested {
        provider: provider.key(),
        amount,
        unbonding: provider.unbonding,
        unbonding_ends_at: ends_at,
    });
    Ok(())
}
