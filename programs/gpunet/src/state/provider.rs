//! Providers: GPU owners who stake tokens and run workers.
//!
//! Stake state machine (per provider; see docs/program.md):
//!
//! ```text
//!   stake ──▶ staked ──unstake_request(x ≤ staked − locked)──▶ unbonding ──(after period) withdraw──▶ wallet
//!                │  ▲                                            │
//!   lease_open   │  │ lease end                                 └─ slashable until withdrawn
//!                ▼  │
//!              locked (⊆ staked)
//! ```
//!
//! Status: `Active` ⇄ `Unbonding` (while anything is unbonding) and `Jailed` (set by a slash;
//! `provider_stake` after `jailed_until` lifts it). Only an `Active` provider at or above its
//! minimum stake may take new leases. A slash takes only stake that leases lock, which can never
//! be unbonding: unbonding stake is not slashable, and the unbonding period is only a delay.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::state::config::Config;
use crate::state::gpu::GpuOffer;

/// Longest endpoint string.
pub const MAX_ENDPOINT_LEN: usize = 128;
/// Most worker keys one provider may list.
pub const MAX_WORKERS: usize = 16;
/// Bytes in a region or zone name.
pub const LOCATION_LEN: usize = 16;

/// Where a provider is in its life.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum ProviderStatus {
    /// May take new leases (if staked at or above its minimum).
    Active,
    /// Some stake is unbonding; takes no new leases until it is withdrawn.
    Unbonding,
    /// Slashed; takes no new leases until `jailed_until`, then restaking lifts it.
    Jailed,
}

/// One provider, PDA `[PROVIDER_SEED, authority]`. Stake sits in the vault
/// `[PROVIDER_VAULT_SEED, provider]`, a token account whose authority is this PDA.
///
/// Fixed-size fields come first so that clients can filter with `memcmp` at fixed offsets
/// (status at 40, region at 41, zone at 57, GPU class at 73).
#[account]
#[derive(InitSpace, Debug)]
pub struct Provider {
    /// The provider's wallet; signs registration, updates and stake moves.
    pub authority: Pubkey,
    /// Active, unbonding or jailed.
    pub status: ProviderStatus,
    /// Region name, ASCII, zero-padded (e.g. `eu-west`). Set by the authority.
    pub region: [u8; LOCATION_LEN],
    /// Zone name within the region, ASCII, zero-padded. Set by the authority.
    pub zone: [u8; LOCATION_LEN],
    /// The GPUs offered and their price. Set by the authority.
    pub gpu: GpuOffer,
    /// GPUs currently held by active leases (≤ `gpu.count`). Maintained by lease instructions.
    pub gpus_leased: u16,
    /// Leases currently active on this provider.
    pub active_leases: u32,
    /// Staked tokens, base units, slashable; includes `locked`.
    pub staked: u64,
    /// Part of `staked` that active leases lock; cannot be unbonded.
    pub locked: u64,
    /// Tokens on their way out, base units (not slashable: a slash takes locked stake only).
    pub unbonding: u64,
    /// Unix time after which `unbonding` may be withdrawn; 0 when nothing is unbonding.
    pub unbonding_ends_at: i64,
    /// Tokens slashed from this provider, ever, base units.
    pub slashed_total: u64,
    /// Latest verified benchmark score (set by checkpoints), class-relative units.
    pub score: u64,
    /// Leases opened on this provider, ever.
    pub leases_total: u64,
    /// Checkpoints posted for this provider's leases, ever.
    pub checkpoints_total: u64,
    /// Unix time of registration.
    pub registered_at: i64,
    /// PDA bump of this account.
    pub bump: u8,
    /// PDA bump of the stake vault.
    pub vault_bump: u8,
    /// Unix time from which `provider_stake` lifts the jail; 0 when never jailed.
    pub jailed_until: i64,
    /// Reserved for growth.
    pub reserved: [u8; 56],
    /// gRPC endpoint of the provider's worker gateway, ASCII.
    #[max_len(MAX_ENDPOINT_LEN)]
    pub endpoint: String,
    /// Worker machine keys allowed to speak for this provider.
    #[max_len(MAX_WORKERS)]
    pub workers: Vec<Pubkey>,
}

impl Provider {
    /// Free stake: staked but not locked by leases.
    pub fn free_stake(&self) -> Result<u64> {
        crate::math::safe_sub(self.staked, self.locked)
    }

    /// Whether this provider may take a new lease under `config`'s minimum stake.
    pub fn can_take_leases(&self, config: &Config) -> Result<bool> {
        Ok(self.status == ProviderStatus::Active
            && self.staked >= config.min_stake(self.gpu.class, self.gpu.count)?)
    }

    /// Checks that this provider can lease out `gpus` more GPUs at no more than `max_price`
    /// each, locking `stake` for them (`lease_open`, and `lease_resize` growing a lease).
    pub fn check_can_lease(
        &self,
        config: &Config,
        gpus: u16,
        max_price: u64,
        stake: u64,
    ) -> Result<()> {
        require!(
            self.status != ProviderStatus::Jailed,
            GpunetError::ProviderJailed
        );
        require!(
            self.status != ProviderStatus::Unbonding,
            GpunetError::ProviderUnbonding
        );
        require!(
            self.gpu.price_per_gpu_second <= max_price,
            GpunetError::PriceAboveMax
        );
        let free_gpus = self
            .gpu
            .count
            .checked_sub(self.gpus_leased)
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        require!(gpus <= free_gpus, GpunetError::NotEnoughCapacity);
        require!(
            self.staked >= config.min_stake(self.gpu.class, self.gpu.count)?
                && self.free_stake()? >= stake,
            GpunetError::BelowMinimumStake
        );
        Ok(())
    }

    /// Books a new lease of `gpus` GPUs that locks `stake` (called by `lease_open`).
    pub fn hold_lease(&mut self, gpus: u16, stake: u64) -> Result<()> {
        let overflow = || error!(GpunetError::MathOverflow);
        self.gpus_leased = self.gpus_leased.checked_add(gpus).ok_or_else(overflow)?;
        self.active_leases = self.active_leases.checked_add(1).ok_or_else(overflow)?;
        self.locked = crate::math::safe_add(self.locked, stake)?;
        self.leases_total = crate::math::safe_add(self.leases_total, 1)?;
        Ok(())
    }

    /// Releases a lease's GPUs and stake lock (called when it closes or is slashed).
    pub fn release_lease(&mut self, gpus: u16, stake: u64) -> Result<()> {
        let underflow = || error!(GpunetError::MathOverflow);
        self.gpus_leased = self.gpus_leased.checked_sub(gpus).ok_or_else(underflow)?;
        self.active_leases = self.active_leases.checked_sub(1).ok_or_else(underflow)?;
        self.locked = crate::math::safe_sub(self.locked, stake)?;
        Ok(())
    }

    /// `gpus` of a lease that goes on leave it with `stake` (a partial slash).
    pub fn release_gpus(&mut self, gpus: u16, stake: u64) -> Result<()> {
        let underflow = || error!(GpunetError::MathOverflow);
        self.gpus_leased = self.gpus_leased.checked_sub(gpus).ok_or_else(underflow)?;
        self.locked = crate::math::safe_sub(self.locked, stake)?;
        Ok(())
    }

    /// Status after an unbonding change, keeping `Jailed` sticky.
    pub fn refresh_status(&mut self) {
        if self.status != ProviderStatus::Jailed {
            self.status = if self.unbonding > 0 {
                ProviderStatus::Unbonding
            } else {
                ProviderStatus::Active
            };
        }
    }

    /// The stake vault must hold at least staked + unbonding. It may hold more: anyone can send
    /// tokens to a token account, and an exact-balance rule would let a 1-token gift freeze the
    /// provider. The surplus is swept to the provider when the vault closes.
    pub fn check_vault(&self, vault_amount: u64) -> Result<()> {
        let expected = crate::math::safe_add(self.staked, self.unbonding)?;
        require!(vault_amount >= expected, GpunetError::InvariantViolated);
        Ok(())
    }

    /// Rules that hold after every instruction that writes a provider.
    pub fn invariant(&self) -> Result<()> {
        require!(self.locked <= self.staked, GpunetError::InvariantViolated);
        require!(
            self.gpus_leased <= self.gpu.count,
            GpunetError::InvariantViolated
        );
        require!(
            (self.unbonding == 0) == (self.unbonding_ends_at == 0),
            GpunetError::InvariantViolated
        );
        match self.status {
            ProviderStatus::Active => require!(self.unbonding == 0, GpunetError::InvariantViolated),
            ProviderStatus::Unbonding => {
                require!(self.unbonding > 0, GpunetError::InvariantViolated)
            }
            ProviderStatus::Jailed => {}
        }
        if self.active_leases == 0 {
            require!(
                self.gpus_leased == 0 && self.locked == 0,
                GpunetError::InvariantViolated
            );
        }
        self.gpu.validate()?;
        validate_endpoint(&self.endpoint)?;
        validate_workers(&self.workers)?;
        Ok(())
    }
}

/// Encodes a region or zone name: 1..=16 printable ASCII bytes, zero-padded.
pub fn encode_location(name: &str) -> Result<[u8; LOCATION_LEN]> {
    let bytes = name.as_bytes();
    require!(
        !bytes.is_empty()
            && bytes.len() <= LOCATION_LEN
            && bytes.iter().all(|b| b.is_ascii_graphic()),
        GpunetError::InvalidLocation
    );
    let mut out = [0u8; LOCATION_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// Checks an endpoint: 1..=128 printable ASCII bytes.
pub fn validate_endpoint(endpoint: &str) -> Result<()> {
    let b = endpoint.as_bytes();
    require!(
        !b.is_empty() && b.len() <= MAX_ENDPOINT_LEN && b.iter().all(|c| c.is_ascii_graphic()),
        GpunetError::InvalidEndpoint
    );
    Ok(())
}

/// Checks worker keys: 1..=16, distinct, none the default key.
pub fn validate_workers(workers: &[Pubkey]) -> Result<()> {
    require!(
        !workers.is_empty() && workers.len() <= MAX_WORKERS,
        GpunetError::InvalidWorkers
    );
    for (i, w) in workers.iter().enumerate() {
        require!(*w != Pubkey::default(), GpunetError::InvalidWorkers);
        require!(!workers[..i].contains(w), GpunetError::InvalidWorkers);
    }
    Ok(())
}
