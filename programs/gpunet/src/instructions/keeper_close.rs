//! `keeper_close`: after unbonding, the bond goes back to the keeper's wallet and the keeper
//! account and its vault are closed, their rent returned to the wallet. Works while the
//! protocol is paused (an exit).

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::KeeperClosed;
use crate::state::{CONFIG_SEED, Config, KEEPER_SEED, KEEPER_VAULT_SEED, Keeper, KeeperStatus};
use crate::transfers::{close_vault, pay_out};

#[event_cpi]
#[derive(Accounts)]
pub struct KeeperClose<'info> {
    /// The keeper's wallet; receives the bond and the rent.
    #[account(mut)]
    pub authority: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    #[account(
        mut,
        close = authority,
        seeds = [KEEPER_SEED, authority.key().as_ref()],
        bump = keeper.bump,
        has_one = authority @ GpunetError::WrongAuthority,
    )]
    pub keeper: Account<'info, Keeper>,

    #[account(
        mut,
        seeds = [KEEPER_VAULT_SEED, keeper.key().as_ref()],
        bump = keeper.vault_bump,
    )]
    pub vault: Account<'info, TokenAccount>,

    /// Where the bond goes: any token account of the config mint.
    #[account(
        mut,
        constraint = destination.mint == config.mint @ GpunetError::WrongMint,
    )]
    pub destination: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl KeeperClose<'_> {
    fn validate(&self) -> Result<()> {
        require!(
            self.keeper.status == KeeperStatus::Unbonding,
            GpunetError::KeeperNotUnbonding
        );
        let now = Clock::get()?.unix_timestamp;
        require!(
            now >= self.keeper.unbonding_ends_at,
            GpunetError::UnbondingNotFinished
        );
        self.keeper.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<KeeperClose>) -> Result<()> {
    // The whole balance: the bond plus anything sent to the vault by others.
    let returned = ctx.accounts.vault.amount;
    let authority_key = ctx.accounts.authority.key();
    let seeds: &[&[u8]] = &[
        KEEPER_SEED,
        authority_key.as_ref(),
        &[ctx.accounts.keeper.bump],
    ];
    let keeper_info = ctx.accounts.keeper.to_account_info();
    pay_out(
        &ctx.accounts.token_program,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
        &keeper_info,
        &ctx.accounts.mint,
        returned,
        &[seeds],
    )?;
    close_vault(
        &ctx.accounts.token_program,
        &ctx.accounts.vault,
        &ctx.accounts.authority.to_account_info(),
        &keeper_info,
        &[seeds],
    )?;

    emit_cpi!(KeeperClosed {
        keeper: ctx.accounts.keeper.key(),
        authority: authority_key,
        bond_returned: returned,
    });
    Ok(())
}
