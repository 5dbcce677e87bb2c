//! `config_init`: create the singleton config. On a cluster only the program's upgrade
//! authority may call it (so nobody can front-run the deployment); a natively loaded program
//! (localnet, tests) has no upgrade authority, and its deployer initialises it.

use anchor_lang::prelude::*;
use anchor_lang::solana_program::bpf_loader_upgradeable;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::create::create_program_account;
use crate::error::GpunetError;
use crate::events::ConfigInitialized;
use crate::state::{CONFIG_SEED, Config, ConfigParams};

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
    pub mint: Account<'info, Mint>,

    /// Receives protocol fees; must hold `mint`.
    #[account(constraint = treasury.mint == mint.key() @ GpunetError::WrongMint)]
    pub treasury: Account<'info, TokenAccount>,

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
    fn validate(&self, params: &ConfigParams) -> Result<()> {
        params.validate(0)?;
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

#[access_control(ctx.accounts.validate(&params))]
pub fn handler(ctx: Context<ConfigInit>, params: ConfigParams) -> Result<()> {
    let bump = ctx.bumps.config;
    let config = Config {
        admin: ctx.accounts.admin.key(),
        pending_admin: Pubkey::default(),
        mint: ctx.accounts.mint.key(),
        mint_decimals: ctx.accounts.mint.decimals,
        treasury: ctx.accounts.treasury.key(),
        params,
        active_keepers: 0,
        keeper_cursor: 0,
        paused: false,
        bump,
        reserved: [0; 128],
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

    emit_cpi!(ConfigInitialized {
        admin: config.admin,
        mint: config.mint,
        treasury: config.treasury,
        params: config.params,
    });
    Ok(())
}
