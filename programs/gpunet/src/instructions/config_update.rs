//! `config_update`: the admin changes parameters, pauses or unpauses, moves the treasury, or
//! proposes a new admin (who takes over with `config_accept_admin`).

use anchor_lang::prelude::*;
use anchor_spl::token::TokenAccount;

use crate::error::GpunetError;
use crate::events::ConfigUpdated;
use crate::state::{CONFIG_SEED, Config, ConfigParams};

/// What to change; `None` leaves a field as it is.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default)]
pub struct ConfigUpdateArgs {
    /// New economic parameters (all of them; read, modify, write).
    pub params: Option<ConfigParams>,
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
    pub config: Account<'info, Config>,

    /// New treasury, if it moves; must hold the config mint.
    #[account(constraint = new_treasury.mint == config.mint @ GpunetError::WrongMint)]
    pub new_treasury: Option<Account<'info, TokenAccount>>,
}

impl ConfigUpdate<'_> {
    fn validate(&self, args: &ConfigUpdateArgs) -> Result<()> {
        if let Some(params) = &args.params {
            params.validate(self.config.active_keepers)?;
        }
        Ok(())
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<ConfigUpdate>, args: ConfigUpdateArgs) -> Result<()> {
    let treasury = ctx.accounts.new_treasury.as_ref().map(|t| t.key());
    let config = &mut ctx.accounts.config;
    if let Some(params) = args.params {
        config.params = params;
    }
    if let Some(paused) = args.paused {
        config.paused = paused;
    }
    if let Some(pending) = args.pending_admin {
        config.pending_admin = pending;
    }
    if let Some(treasury) = treasury {
        config.treasury = treasury;
    }
    config.invariant()?;

    emit_cpi!(ConfigUpdated {
        admin: config.admin,
        treasury: config.treasury,
        params: config.params.clone(),
        paused: config.paused,
        pending_admin: config.pending_admin,
    });
    Ok(())
}
