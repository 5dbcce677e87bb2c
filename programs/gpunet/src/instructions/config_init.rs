//! `config_init`: create the singleton config. On a cluster only the program's upgrade
//! authority may call it (so nobody can front-run the deployment); a natively loaded program
//! (localnet, tests) has no upgrade authority, and its deployer initialises it.
//!
//! It also creates the treasury vault (PDA `[TREASURY_SEED]`, authority the config), which no
//! one can close, and refuses a mint with a freeze authority unless the admin says
//! `allow_freeze_authority`: whoever holds it could freeze any vault and stop every payout.

use anchor_lang::prelude::*;
use anchor_lang::solana_program::bpf_loader_upgradeable;
use anchor_spl::token::{Mint, Token};

use crate::create::{create_program_account, create_vault};
use crate::error::GpunetError;
use crate::events::ConfigInitialized;
use crate::state::{CONFIG_SEED, Config, ConfigParams, TREASURY_SEED};

#[event_cpi]
#[derive(Accounts)]
pub struct ConfigInit<'info> {
    /// The first admin; pays for the config account.
    #[account(mut)]
    pub admin: Signer<'info>,

    /// CHECK: the config PDA (address fixed by its seeds), created in the handler by
    /// `create::create_program_account`, which refuses a second initialisation.
    #[account(mut, seeds = [CONFIG_SEED], bump)]
    pub config: UncheckedAccount<'info>,

    /// The stake and payment mint (classic SPL Token: Token-2022 extensions such as transfer
    /// fees would break the program's token accounting).
    pub mint: Box<Account<'info, Mint>>,

    /// CHECK: the treasury vault PDA, created in the handler as a token account of `mint`
    /// whose authority is the config PDA.
    #[account(mut, seeds = [TREASURY_SEED], bump)]
    pub treasury: UncheckedAccount<'info>,

    /// CHECK: this program's own account, read only to learn how it was deployed.
    #[account(address = crate::ID)]
    pub this_program: UncheckedAccount<'info>,

    /// The program's ProgramData account; required when the program is deployed by the
    /// upgradeable loader (its address is checked against the program id in `validate`).
    pub program_data: Option<Account<'info, ProgramData>>,

    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

/// Owner of natively loaded builtins (localnet, solana-program-test, LiteSVM).
const NATIVE_LOADER_ID: Pubkey = pubkey!("NativeLoader1111111111111111111111111111111");

impl ConfigInit<'_> {
    fn validate(&self, params: &ConfigParams, allow_freeze_authority: bool) -> Result<()> {
        params.validate(0, self.mint.decimals)?;
        require!(
            allow_freeze_authority || self.mint.freeze_authority.is_none(),
            GpunetError::MintHasFreezeAuthority
        );
        let owner = *self.this_program.owner;
        if owner == bpf_loader_upgradeable::ID {
            let program_data = self
                .program_data
                .as_ref()
                .ok_or_else(|| error!(GpunetError::WrongProgramData))?;
            require_keys_eq!(
                program_data.key(),
                bpf_loader_upgradeable::get_program_data_address(&crate::ID),
                GpunetError::WrongProgramData
            );
            require!(
                program_data.upgrade_authority_address == Some(self.admin.key()),
                GpunetError::NotUpgradeAuthority
            );
            Ok(())
        } else {
            // A native builtin (localnet / tests) has no upgrade authority: its deployer
            // initialises the config in the same start-up that loads it.
            require_keys_eq!(owner, NATIVE_LOADER_ID, GpunetError::NotUpgradeAuthority);
            Ok(())
        }
    }
}

#[access_control(ctx.accounts.validate(&params, allow_freeze_authority))]
pub fn handler(
    ctx: Context<ConfigInit>,
    params: ConfigParams,
    allow_freeze_authority: bool,
) -> Result<()> {
    let bump = ctx.bumps.config;
    let treasury_bump = ctx.bumps.treasury;
    let config = Config {
        admin: ctx.accounts.admin.key(),
        pending_admin: Pubkey::default(),
        mint: ctx.accounts.mint.key(),
        mint_decimals: ctx.accounts.mint.decimals,
        treasury: ctx.accounts.treasury.key(),
        pending_params: params.clone(),
        params,
        pending_params_at: 0,
        active_keepers: 0,
        keeper_set_changed_slot: 0,
        paused: false,
        paused_at: 0,
        paused_seconds: 0,
        bump,
        treasury_bump,
        reserved: [0; 64],
    };
    config.invariant()?;
    create_program_account(
        &ctx.accounts.admin,
        &ctx.accounts.config.to_account_info(),
        &ctx.accounts.system_program,
        Config::INIT_SPACE,
        &[CONFIG_SEED, &[bump]],
        &config,
    )?;
    create_vault(
        &ctx.accounts.admin,
        &ctx.accounts.treasury.to_account_info(),
        &ctx.accounts.mint,
        &ctx.accounts.config.to_account_info(),
        &ctx.accounts.system_program,
        &ctx.accounts.token_program,
        &[TREASURY_SEED, &[treasury_bump]],
    )?;

    emit_cpi!(ConfigInitialized {
        admin: config.admin,
        mint: config.mint,
        treasury: config.treasury,
        params: config.params,
    });
    Ok(())
}
