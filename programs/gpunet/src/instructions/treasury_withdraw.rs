//! `treasury_withdraw`: the admin moves protocol fees and slash remainders out of the treasury
//! vault. The vault itself stays (nobody can close it), so checkpoints and slashes, which pay
//! into it, never stop. Works while paused.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::TreasuryWithdrawn;
use crate::state::{CONFIG_SEED, Config, TREASURY_SEED};
use crate::transfers::pay_out;

#[event_cpi]
#[derive(Accounts)]
pub struct TreasuryWithdraw<'info> {
    pub admin: Signer<'info>,

    #[account(
        seeds = [CONFIG_SEED],
        bump = config.bump,
        has_one = admin @ GpunetError::NotAdmin,
    )]
    pub config: Box<Account<'info, Config>>,

    #[account(
        mut,
        seeds = [TREASURY_SEED],
        bump = config.treasury_bump,
        address = config.treasury @ GpunetError::WrongTreasury,
    )]
    pub treasury: Box<Account<'info, TokenAccount>>,

    /// Any token account of the config mint.
    #[account(mut, constraint = destination.mint == config.mint @ GpunetError::WrongMint)]
    pub destination: Box<Account<'info, TokenAccount>>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Box<Account<'info, Mint>>,

    pub token_program: Program<'info, Token>,
}

pub fn handler(ctx: Context<TreasuryWithdraw>, amount: u64) -> Result<()> {
    require!(amount > 0, GpunetError::ZeroAmount);
    require!(
        amount <= ctx.accounts.treasury.amount,
        GpunetError::TreasuryTooLow
    );
    let a = &ctx.accounts;
    pay_out(
        &a.token_program,
        &a.treasury,
        &a.destination,
        &a.config.to_account_info(),
        &a.mint,
        amount,
        &[&[CONFIG_SEED, &[a.config.bump]]],
    )?;
    emit_cpi!(TreasuryWithdrawn {
        amount,
        destination: ctx.accounts.destination.key(),
    });
    Ok(())
}
