//! `keeper_register`: a wallet bonds the configured amount, publishes its gRPC endpoint and
//! joins the active keeper set (which changes the slot later committee draws start from).

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::create::{create_program_account, create_vault};
use crate::error::GpunetError;
use crate::events::KeeperRegistered;
use crate::state::{
    CONFIG_SEED, Config, KEEPER_SEED, KEEPER_VAULT_SEED, Keeper, KeeperStatus, validate_endpoint,
};
use crate::transfers::pay_in;

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperRegister<'info> {
    /// The keeper's wallet; pays the bond and the rent.
    #[account(mut)]
    pub authority: Signer<'info>,

    #[account(mut, seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Box<Account<'info, Config>>,

    /// CHECK: the keeper PDA (address fixed by its seeds), created in the handler; a second
    /// registration of the same wallet is refused there (`AlreadyInitialized`).
    #[account(mut, seeds = [KEEPER_SEED, authority.key().as_ref()], bump)]
    pub keeper: UncheckedAccount<'info>,

    /// CHECK: the bond vault PDA, created in the handler as a token account of `mint` whose
    /// authority is the keeper PDA.
    #[account(mut, seeds = [KEEPER_VAULT_SEED, keeper.key().as_ref()], bump)]
    pub vault: UncheckedAccount<'info>,

    /// The wallet's token account the bond comes from.
    #[account(
        mut,
        constraint = authority_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = authority_token.owner == authority.key() @ GpunetError::WrongTokenOwner,
    )]
    pub authority_token: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl KeeperRegister<'_> {
    fn validate(&self, endpoint: &str) -> Result<()> {
        self.config.require_not_paused()?;
        validate_endpoint(endpoint)?;
        require!(
            self.config.active_keepers < self.config.params.max_keepers,
            GpunetError::KeeperSetFull
        );
        Ok(())
    }
}

#[access_control(ctx.accounts.validate(&endpoint))]
pub fn handler(ctx: Context<KeeperRegister>, endpoint: String) -> Result<()> {
    let clock = Clock::get()?;
    let bond = ctx.accounts.config.params.keeper_bond;
    let authority_key = ctx.accounts.authority.key();
    let keeper_key = ctx.accounts.keeper.key();
    let (keeper_bump, vault_bump) = (ctx.bumps.keeper, ctx.bumps.vault);
    let keeper = Keeper {
        authority: authority_key,
        status: KeeperStatus::Active,
        bond,
        index: ctx.accounts.config.active_keepers,
        unbonding_ends_at: 0,
        leases_assigned: 0,
        leases_served: 0,
        fees_earned: 0,
        registered_at: clock.unix_timestamp,
        bump: keeper_bump,
        vault_bump,
        slashed_total: 0,
        reserved: [0; 64],
        endpoint: endpoint.clone(),
    };
    keeper.invariant()?;

    let a = &ctx.accounts;
    let keeper_info = a.keeper.to_account_info();
    let vault_info = a.vault.to_account_info();
    create_program_account(
        &a.authority,
        &keeper_info,
        &a.system_program,
        Keeper::INIT_SPACE,
        &[KEEPER_SEED, authority_key.as_ref(), &[keeper_bump]],
        &keeper,
    )?;
    create_vault(
        &a.authority,
        &vault_info,
        &a.mint,
        &keeper_info,
        &a.system_program,
        &a.token_program,
        &[KEEPER_VAULT_SEED, keeper_key.as_ref(), &[vault_bump]],
    )?;
    pay_in(
        &a.token_program,
        &a.authority_token,
        &vault_info,
        &a.authority,
        &a.mint,
        bond,
    )?;
    let vault_amount =
        TokenAccount::try_deserialize(&mut &vault_info.try_borrow_data()?[..])?.amount;
    keeper.check_vault(vault_amount)?;

    let config = &mut ctx.accounts.config;
    config.active_keepers = config
        .active_keepers
        .checked_add(1)
        .ok_or_else(|| error!(GpunetError::MathOverflow))?;
    config.keeper_set_changed(clock.slot);
    config.invariant()?;

    emit_cpi!(KeeperRegistered {
        keeper: keeper_key,
        authority: authority_key,
        bond,
        endpoint,
    });
    Ok(())
}
