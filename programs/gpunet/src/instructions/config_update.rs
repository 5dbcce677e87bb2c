//! `config_update`: the admin proposes new parameters, pauses or unpauses, or proposes a new
//! admin (who takes over with `config_accept_admin`).
//!
//! New parameters take effect after the config's `param_change_delay` (`config_apply`, by
//! anyone), so providers, keepers and users see a change coming; with a delay of 0 they apply
//! at once. Leases keep the terms they opened with either way. The treasury is a vault of this
//! program and cannot be moved. Pausing records when, so that deadlines can skip paused time.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::ConfigUpdated;
use crate::math::safe_add_time;
use crate::state::{CONFIG_SEED, Config, ConfigParams};

/// What to change; `None` leaves a field as it is.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default)]
pub struct ConfigUpdateArgs {
    /// New economic parameters (all of them; read, modify, write), current after the delay.
    pub params: Option<ConfigParams>,
    /// Drop a pending parameter change.
    pub cancel_pending_params: bool,
    /// Pause or unpause the protocol.
    pub paused: Option<bool>,
    /// Propose a new admin; `Pubkey::default()` cancels a pending handover.
    pub pending_admin: Option<Pubkey>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct ConfigUpdate<'info> {
    pub admin: Signer<'info>,

    #[account(
        mut,
        seeds = [CONFIG_SEED],
        bump = config.bump,
        has_one = admin @ GpunetError::NotAdmin,
    )]
    pub config: Box<Account<'info, Config>>,
}

impl ConfigUpdate<'_> {
    fn validate(&self, args: &ConfigUpdateArgs) -> Result<()> {
        if let Some(params) = &args.params {
            params.validate(self.config.active_keepers, self.config.mint_decimals)?;
        }
        if args.cancel_pending_params {
            require!(
                self.config.pending_params_at != 0,
                GpunetError::NoParamsPending
            );
        }
        Ok(())
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<ConfigUpdate>, args: ConfigUpdateArgs) -> Result<()> {
    let now = Clock::get()?.unix_timestamp;
    let config = &mut ctx.accounts.config;
    if args.cancel_pending_params {
        config.pending_params_at = 0;
    }
    if let Some(params) = args.params {
        let delay = config.params.param_change_delay;
        if delay == 0 {
            config.params = params;
            config.pending_params_at = 0;
        } else {
            config.pending_params = params;
            config.pending_params_at = safe_add_time(now, delay)?;
        }
    }
    match (args.paused, config.paused) {
        (Some(true), false) => {
            config.paused = true;
            config.paused_at = now.max(1);
        }
        (Some(false), true) => {
            config.paused_seconds = config.paused_seconds_at(now)?;
            config.paused = false;
            config.paused_at = 0;
        }
        _ => {}
    }
    if let Some(pending) = args.pending_admin {
        config.pending_admin = pending;
    }
    config.invariant()?;

    emit_cpi!(ConfigUpdated {
        admin: config.admin,
        params: config.params.clone(),
        pending_params: config.pending_params.clone(),
        pending_params_at: config.pending_params_at,
        paused: config.paused,
        pending_admin: config.pending_admin,
    });
    Ok(())
}
