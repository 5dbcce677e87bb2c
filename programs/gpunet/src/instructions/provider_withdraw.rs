//! `provider_withdraw`: after the unbonding period, the unbonding stake goes back to the
//! provider's wallet.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::ProviderWithdrawn;
use crate::state::{CONFIG_SEED, Config, PROVIDER_SEED, PROVIDER_VAULT_SEED, Provider};
use crate::transfers::pay_out;

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderWithdraw<'info> {
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

    #[account(
        mut,
        seeds = [PROVIDER_VAULT_SEED, provider.key().as_ref()],
        bump = provider.vault_bump,
    )]
    pub vault: Account<'info, TokenAccount>,

    /// Where the stake goes: any token account of the config mint.
    #[account(
        mut,
        constraint = destination.mint == config.mint @ GpunetError::WrongMint,
    )]
    pub destination: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl ProviderWithdraw<'_> {
    fn validate(&self) -> Result<()> {
        // No pause check: an exit.
        require!(self.provider.unbonding > 0, GpunetError::NothingToWithdraw);
        let now = Clock::get()?.unix_timestamp;
        require!(
            now >= self.provider.unbonding_ends_at,
            GpunetError::UnbondingNotFinished
        );
        self.provider.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<ProviderWithdraw>) -> Result<()> {
    let amount = ctx.accounts.provider.unbonding;
    let authority_key = ctx.accounts.authority.key();
    let seeds: &[&[u8]] = &[
        crate::state::PROVIDER_SEED,
        authority_key.as_ref(),
        &[ctx.accounts.provider.bump],
    ];
    pay_out(
        &ctx.accounts.token_program,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
        &ctx.accounts.provider.to_account_info(),
        &ctx.accounts.mint,
        amount,
        &[seeds],
    )?;

    let provider = &mut ctx.accounts.provider;
    provider.unbonding = 0;
    provider.unbonding_ends_at = 0;
    provider.refresh_status();
    provider.invariant()?;
    ctx.accounts.vault.reload()?;
    ctx.accounts
        .provider
        .check_vault(ctx.accounts.vault.amount)?;

    emit_cpi!(ProviderWithdrawn {
        provider: ctx.accounts.provider.key(),
        amount,
    });
    Ok(())
}
