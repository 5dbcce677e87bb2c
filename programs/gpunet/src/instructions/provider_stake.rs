//! `provider_stake`: the provider moves tokens from its wallet into its stake vault. Once a
//! jailed provider's jail period is over, staking lifts the jail (one slash is not death): it
//! takes leases again as soon as its stake is at its minimum.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token, TokenAccount};

use crate::error::GpunetError;
use crate::events::ProviderStaked;
use crate::math::safe_add;
use crate::state::{
    CONFIG_SEED, Config, PROVIDER_SEED, PROVIDER_VAULT_SEED, Provider, ProviderStatus,
};
use crate::transfers::pay_in;

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderStake<'info> {
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

    /// The wallet's token account the stake comes from.
    #[account(
        mut,
        constraint = authority_token.mint == config.mint @ GpunetError::WrongMint,
        constraint = authority_token.owner == authority.key() @ GpunetError::WrongTokenOwner,
    )]
    pub authority_token: Account<'info, TokenAccount>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
}

impl ProviderStake<'_> {
    fn validate(&self, amount: u64) -> Result<()> {
        self.config.require_not_paused()?;
        require!(amount > 0, GpunetError::ZeroAmount);
        self.provider.check_vault(self.vault.amount)
    }
}

#[access_control(ctx.accounts.validate(amount))]
pub fn handler(ctx: Context<ProviderStake>, amount: u64) -> Result<()> {
    let staked = safe_add(ctx.accounts.provider.staked, amount)?;
    pay_in(
        &ctx.accounts.token_program,
        &ctx.accounts.authority_token,
        &ctx.accounts.vault.to_account_info(),
        &ctx.accounts.authority,
        &ctx.accounts.mint,
        amount,
    )?;

    let now = Clock::get()?.unix_timestamp;
    let provider = &mut ctx.accounts.provider;
    provider.staked = staked;
    let unjailed = provider.status == ProviderStatus::Jailed && now >= provider.jailed_until;
    if unjailed {
        provider.status = ProviderStatus::Active;
        provider.refresh_status();
    }
    provider.invariant()?;
    ctx.accounts.vault.reload()?;
    ctx.accounts
        .provider
        .check_vault(ctx.accounts.vault.amount)?;

    emit_cpi!(ProviderStaked {
        provider: ctx.accounts.provider.key(),
        amount,
        staked,
        unjailed,
    });
    Ok(())
}
