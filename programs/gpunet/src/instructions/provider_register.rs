//! `provider_register`: a wallet offers GPUs: location, endpoint, the GPU offer and the worker
//! keys allowed to speak for it. Stake comes separately with `provider_stake`.

use anchor_lang::prelude::*;
use anchor_spl::token::{Mint, Token};

use crate::create::{create_program_account, create_vault};
use crate::error::GpunetError;
use crate::events::ProviderRegistered;
use crate::state::{
    CONFIG_SEED, Config, GpuOffer, PROVIDER_SEED, PROVIDER_VAULT_SEED, Provider, ProviderStatus,
    encode_location, validate_endpoint, validate_workers,
};

/// What a provider offers and where.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug)]
pub struct ProviderRegisterArgs {
    /// Region, 1–16 printable ASCII characters.
    pub region: String,
    /// Zone within the region, 1–16 printable ASCII characters.
    pub zone: String,
    /// gRPC endpoint of the worker gateway, 1–128 printable ASCII characters.
    pub endpoint: String,
    /// The GPU offer.
    pub gpu: GpuOffer,
    /// Worker keys, 1–16, distinct.
    pub workers: Vec<Pubkey>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderRegister<'info> {
    /// The provider's wallet; pays the rent.
    #[account(mut)]
    pub authority: Signer<'info>,

    #[account(seeds = [CONFIG_SEED], bump = config.bump)]
    pub config: Account<'info, Config>,

    /// CHECK: the provider PDA (address fixed by its seeds), created in the handler; a second
    /// registration of the same wallet is refused there (`AlreadyInitialized`).
    #[account(mut, seeds = [PROVIDER_SEED, authority.key().as_ref()], bump)]
    pub provider: UncheckedAccount<'info>,

    /// CHECK: the stake vault PDA, created in the handler as a token account of `mint` whose
    /// authority is the provider PDA.
    #[account(mut, seeds = [PROVIDER_VAULT_SEED, provider.key().as_ref()], bump)]
    pub vault: UncheckedAccount<'info>,

    #[account(address = config.mint @ GpunetError::WrongMint)]
    pub mint: Account<'info, Mint>,

    pub token_program: Program<'info, Token>,
    pub system_program: Program<'info, System>,
}

impl ProviderRegister<'_> {
    fn validate(&self, args: &ProviderRegisterArgs) -> Result<()> {
        self.config.require_not_paused()?;
        args.gpu.validate()?;
        validate_endpoint(&args.endpoint)?;
        validate_workers(&args.workers)?;
        Ok(())
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<ProviderRegister>, args: ProviderRegisterArgs) -> Result<()> {
    let authority_key = ctx.accounts.authority.key();
    let provider_key = ctx.accounts.provider.key();
    let (provider_bump, vault_bump) = (ctx.bumps.provider, ctx.bumps.vault);
    let provider = Provider {
        authority: authority_key,
        status: ProviderStatus::Active,
        region: encode_location(&args.region)?,
        zone: encode_location(&args.zone)?,
        gpu: args.gpu,
        gpus_leased: 0,
        active_leases: 0,
        staked: 0,
        locked: 0,
        unbonding: 0,
        unbonding_ends_at: 0,
        slashed_total: 0,
        score: 0,
        leases_total: 0,
        checkpoints_total: 0,
        registered_at: Clock::get()?.unix_timestamp,
        bump: provider_bump,
        vault_bump,
        jailed_until: 0,
        reserved: [0; 56],
        endpoint: args.endpoint,
        workers: args.workers,
    };
    provider.invariant()?;

    let a = &ctx.accounts;
    let provider_info = a.provider.to_account_info();
    create_program_account(
        &a.authority,
        &provider_info,
        &a.system_program,
        Provider::INIT_SPACE,
        &[PROVIDER_SEED, authority_key.as_ref(), &[provider_bump]],
        &provider,
    )?;
    create_vault(
        &a.authority,
        &a.vault.to_account_info(),
        &a.mint,
        &provider_info,
        &a.system_program,
        &a.token_program,
        &[PROVIDER_VAULT_SEED, provider_key.as_ref(), &[vault_bump]],
    )?;

    emit_cpi!(ProviderRegistered {
        provider: provider_key,
        authority: authority_key,
        gpu: provider.gpu,
        region: provider.region,
        zone: provider.zone,
    });
    Ok(())
}
