//! `provider_close`: a provider with nothing staked, unbonding or leased closes its account
//! and vault; the rent goes back to its wallet.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::ProviderClosed;
use crate::state::{CONFIG_SEED, Config, PROVIDER_SEED, PROVIDER_VAULT_SEED, Provider};
use crate::transfers::{close_vault, pay_out};

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderClose<'info> {
    /// The provider's wallet; receives the rent.
    #[account(mut)]
    pub authority: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    #[account(
        mut,
        close = authority,
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

    /// Receives whatever the vault still holds (tokens others sent to it).
    #[account(
        mut,
        constraint = destination.mint == config.mint @ GpunetError::WrongMint,
    )]
    pub destination: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl ProviderClose<'_> {
    fn validate(&self) -> Result<()> {
        // No pause check: an exit.
        let p = &self.provider;
        require!(
            p.staked == 0 && p.unbonding == 0 && p.active_leases == 0,
            GpunetError::ProviderNotEmpty
        );
        p.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate())]
pub fn handler(ctx: Context<ProviderClose>) -> Result<()> {
    let authority_key = ctx.accounts.authority.key();
    let seeds: &[&[u8]] = &[
        PROVIDER_SEED,
        authority_key.as_ref(),
        &[ctx.accounts.provider.bump],
    ];
    // Nothing is staked, so any balance is a gift: sweep it out, or the close would fail.
    let provider_info = ctx.accounts.provider.to_account_info();
    pay_out(
        &ctx.accounts.token_program,
        &ctx.accounts.vault,
        &ctx.accounts.destination,
        &provider_info,
        &ctx.accounts.mint,
        ctx.accounts.vault.amount,
        &[seeds],
    )?;
    close_vault(
        &ctx.accounts.token_program,
        &ctx.accounts.vault,
        &ctx.accounts.authority.to_account_info(),
        &provider_info,
        &[seeds],
    )?;

    emit_cpi!(ProviderClosed {
        provider: ctx.accounts.provider.key(),
        authority: authority_key,
    });
    Ok(())
}
