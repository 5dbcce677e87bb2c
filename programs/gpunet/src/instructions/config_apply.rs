//! `config_apply`: anyone makes a pending parameter change current once its delay has passed.
//! The parameters are checked again against the keeper set of the moment.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::ConfigParamsApplied;
use crate::state::{CONFIG_SEED, Config};

#[event_cpi]
#[derive(Accounts)]
pub struct ConfigApply<'info> {
    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,
}

impl ConfigApply<'_> {
    fn validate(&self) -> Result<()> {
        let c = &self.config;
        require!(c.pending_params_at != 0, GpunetError::NoParamsPending);
        let now = Clock::get()?.unix_timestamp;
        require!(now >= c.pending_params_at, GpunetError::ParamsNotDue);
        c.pending_params.validate(c.active_keepers, c.mint_decimals)
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<ConfigApply>) -> Result<()> {
    let config = &mut ctx.accounts.config;
    config.params = config.pending_params.clone();
    config.pending_params_at = 0;
    config.invariant()?;
    emit_cpi!(ConfigParamsApplied {
        params: config.params.clone(),
    });
    Ok(())
}
