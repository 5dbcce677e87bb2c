//! The singleton protocol configuration: every economic parameter lives here.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::math::BPS_DENOMINATOR;
use crate::state::gpu::{GPU_CLASS_COUNT, GpuClass};

/// Largest slash quorum: every co-signing keeper adds a signature (64 B) and a key (32 B) to a
/// transaction limited to 1,232 bytes.
pub const MAX_SLASH_QUORUM: u8 = 7;
/// Smallest slash quorum: one keeper alone can never slash.
pub const MIN_SLASH_QUORUM: u8 = 2;
/// Largest keeper set a config may allow.
pub const MAX_KEEPERS_LIMIT: u16 = 1024;
/// Longest period any time parameter may have (365 days), so that `now + period` never overflows
/// and a typo cannot lock stake for centuries.
pub const MAX_PERIOD_SECONDS: i64 = 365 * 24 * 60 * 60;

/// Economic parameters, as given to `config_init` and checked together by [`ConfigParams::validate`].
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Debug, PartialEq, Eq, InitSpace)]
pub struct ConfigParams {
    /// Share of each checkpoint payout that goes to the treasury, bps.
    pub protocol_fee_bps: u16,
    /// Share of each checkpoint payout that goes to the lease's keeper, bps.
    pub keeper_fee_bps: u16,
    /// Minimum provider stake per GPU offered, by [`GpuClass`] index, base units of the mint.
    pub min_stake_per_gpu: [u64; GPU_CLASS_COUNT],
    /// Bond each keeper deposits on registration, base units.
    pub keeper_bond: u64,
    /// Seconds between an unstake request (or keeper deregistration) and the withdrawal.
    pub unbonding_period: i64,
    /// Seconds between the checkpoints a keeper must post for each lease.
    pub checkpoint_interval: i64,
    /// Seconds a lease may run unfunded, or a keeper may miss checkpoints, before action.
    pub grace_period: i64,
    /// Share of the stake a lease locks that a slash takes, bps.
    pub slash_fraction_bps: u16,
    /// Share of a slashed amount that goes to the treasury (the rest to the user), bps.
    pub slash_treasury_bps: u16,
    /// Distinct active keepers that must sign a slash.
    pub slash_quorum: u8,
    /// Most keepers that may be active at once.
    pub max_keepers: u16,
}

impl ConfigParams {
    /// Refuses nonsense with a named error. `active_keepers` is the current keeper count
    /// (zero at init).
    pub fn validate(&self, active_keepers: u16) -> Result<()> {
        let fees = u32::from(self.protocol_fee_bps) + u32::from(self.keeper_fee_bps);
        require!(fees <= u32::from(BPS_DENOMINATOR), GpunetError::FeesTooHigh);
        require!(
            self.slash_fraction_bps <= BPS_DENOMINATOR
                && self.slash_treasury_bps <= BPS_DENOMINATOR,
            GpunetError::BpsOutOfRange
        );
        require!(self.keeper_bond > 0, GpunetError::InvalidKeeperBond);
        for period in [
            self.unbonding_period,
            self.checkpoint_interval,
            self.grace_period,
        ] {
            require!(
                period > 0 && period <= MAX_PERIOD_SECONDS,
                GpunetError::InvalidPeriod
            );
        }
        require!(
            self.max_keepers >= u16::from(MIN_SLASH_QUORUM)
                && self.max_keepers <= MAX_KEEPERS_LIMIT
                && self.max_keepers >= active_keepers,
            GpunetError::InvalidMaxKeepers
        );
        require!(
            self.slash_quorum >= MIN_SLASH_QUORUM
                && self.slash_quorum <= MAX_SLASH_QUORUM
                && u16::from(self.slash_quorum) <= self.max_keepers,
            GpunetError::InvalidSlashQuorum
        );
        Ok(())
    }
}

/// Singleton config account, PDA `[CONFIG_SEED]`. Written by the admin only (`config_init`,
/// `config_update`, `config_accept_admin`), except `active_keepers` (maintained by keeper
/// registration and deregistration) and `keeper_cursor` (advanced by `lease_open`).
#[account]
#[derive(InitSpace, Debug)]
pub struct Config {
    /// Who may change this config.
    pub admin: Pubkey,
    /// Proposed next admin; `Pubkey::default()` when no handover is pending. Set by the admin,
    /// accepted by the new admin's own signature so a typo cannot lock the protocol.
    pub pending_admin: Pubkey,
    /// The SPL token (classic Token program) used for stakes, bonds and payments. Fixed at init.
    pub mint: Pubkey,
    /// Decimals of `mint`, for `transfer_checked`.
    pub mint_decimals: u8,
    /// Token account of `mint` that receives protocol fees and the treasury's share of slashes.
    pub treasury: Pubkey,
    /// The economic parameters.
    pub params: ConfigParams,
    /// Keepers currently active (registered and not deregistering). Maintained by
    /// `keeper_register` / `keeper_deregister`.
    pub active_keepers: u16,
    /// Round-robin cursor: the next lease goes to the active keeper with index
    /// `keeper_cursor % active_keepers`. Advanced by `lease_open`.
    pub keeper_cursor: u64,
    /// When true, every instruction except the admin's refuses to run.
    pub paused: bool,
    /// PDA bump.
    pub bump: u8,
    /// Reserved for growth.
    pub reserved: [u8; 128],
}

impl Config {
    /// Minimum total stake for `count` GPUs of `class`.
    pub fn min_stake(&self, class: GpuClass, count: u16) -> Result<u64> {
        crate::math::safe_mul(
            self.params.min_stake_per_gpu[class.index()],
            u64::from(count),
        )
    }

    /// Index of the keeper the next lease is assigned to.
    pub fn next_keeper_index(&self) -> Result<u16> {
        require!(self.active_keepers > 0, GpunetError::NoActiveKeeper);
        let i = self.keeper_cursor % u64::from(self.active_keepers);
        u16::try_from(i).map_err(|_| error!(GpunetError::MathOverflow))
    }

    /// Fails with [`GpunetError::ProtocolPaused`] when the protocol is paused.
    pub fn require_not_paused(&self) -> Result<()> {
        require!(!self.paused, GpunetError::ProtocolPaused);
        Ok(())
    }

    /// Rules that hold after every instruction that writes the config.
    pub fn invariant(&self) -> Result<()> {
        self.params
            .validate(self.active_keepers)
            .map_err(|_| error!(GpunetError::InvariantViolated))?;
        require!(
            self.admin != Pubkey::default(),
            GpunetError::InvariantViolated
        );
        Ok(())
    }
}
