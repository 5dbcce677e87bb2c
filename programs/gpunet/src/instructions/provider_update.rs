//! `provider_update`: the provider changes its location, endpoint, offer or worker keys.
//! Open leases keep the price they were opened at; the GPU count cannot drop below the GPUs
//! leased, and the class cannot change while any lease is active.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::events::ProviderUpdated;
use crate::state::{
    CONFIG_SEED, Config, GpuOffer, PROVIDER_SEED, Provider, encode_location, validate_endpoint,
    validate_workers,
};

/// What to change; `None` leaves a field as it is.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, Default)]
pub struct ProviderUpdateArgs {
    pub region: Option<String>,
    pub zone: Option<String>,
    pub endpoint: Option<String>,
    pub gpu: Option<GpuOffer>,
    /// Replaces the whole worker list.
    pub workers: Option<Vec<Pubkey>>,
}

#[event_cpi]
#[derive(Accounts)]
pub struct ProviderUpdate<'info> {
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
}

impl ProviderUpdate<'_> {
    fn validate(&self, args: &ProviderUpdateArgs) -> Result<()> {
        self.config.require_not_paused()?;
        if let Some(gpu) = &args.gpu {
            gpu.validate()?;
            require!(
                gpu.count >= self.provider.gpus_leased,
                GpunetError::GpusInUse
            );
            require!(
                gpu.class == self.provider.gpu.class || self.provider.active_leases == 0,
                GpunetError::ClassChangeWithLeases
            );
        }
        if let Some(endpoint) = &args.endpoint {
            validate_endpoint(endpoint)?;
        }
        if let Some(workers) = &args.workers {
            validate_workers(workers)?;
        }
        Ok(())
    }
}

#[access_control(ctx.accounts.validate(&args))]
pub fn handler(ctx: Context<ProviderUpdate>, args: ProviderUpdateArgs) -> Result<()> {
    let provider = &mut ctx.accounts.provider;
    if let Some(region) = &args.region {
        provider.region = encode_location(region)?;
    }
    if let Some(zone) = &args.zone {
        provider.zone = encode_location(zone)?;
    }
    if let Some(endpoint) = args.endpoint {
        provider.endpoint = endpoint;
    }
    if let Some(gpu) = args.gpu {
        provider.gpu = gpu;
    }
    if let Some(workers) = args.workers {
        provider.workers = workers;
    }
    provider.invariant()?;

    emit_cpi!(ProviderUpdated {
        provider: provider.key(),
        gpu: provider.gpu,
        region: provider.region,
        zone: provider.zone,
        workers: provider.workers.len() as u8,
    });
    Ok(())
}
