//! `config_accept_admin`: the proposed admin takes over. Two steps, so that a mistyped key can
//! never leave the protocol without an admin.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::AdminChanged;
use crate::state::{CONFIG_SEED, Config};

#[event_cpi]
#[derive(Accounts)]
pub struct ConfigAcceptAdmin<'info> {
    pub new_admin: Signer<'info>,

    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,
}

impl ConfigAcceptAdmin<'_> {
    fn validate(&self) -> Result<()> {
        require_keys_neq!(
            self.config.pending_admin,
            Pubkey::default(),
            GpunetError::NoPendingAdmin
        );
        require_keys_eq!(
            self.config.pending_admin,
            self.new_admin.key(),
            GpunetError::NotPendingAdmin
        );
        Ok(())
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<ConfigAcceptAdmin>) -> Result<()> {
    let config = &mut ctx.accounts.config;
    let old_admin = config.admin;
    config.admin = ctx.accounts.new_admin.key();
    config.pending_admin = Pubkey::default();
    config.invariant()?;

    emit_cpi!(AdminChanged {
        old_admin,
        new_admin: config.admin,
    });
    Ok(())
}
