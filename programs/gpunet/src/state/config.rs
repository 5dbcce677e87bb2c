//! The singleton protocol configuration: every economic parameter lives here.

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::math::BPS_DENOMINATOR;
use crate::state::gpu::{GPU_CLASS_COUNT, GpuClass};

/// Largest slash quorum and largest verification committee: every co-signing keeper adds a
/// signature (64 B) and two keys (64 B) to a transaction limited to 1,232 bytes.
pub const MAX_SLASH_QUORUM: u8 = 7;
/// Largest verification committee a lease can have (its members are stored on the lease).
pub const MAX_COMMITTEE: usize = MAX_SLASH_QUORUM as usize;
/// Highest protocol fee the admin may set (20 %).
pub const MAX_PROTOCOL_FEE_BPS: u16 = 2_000;
/// Highest keeper fee the admin may set (20 %).
pub const MAX_KEEPER_FEE_BPS: u16 = 2_000;
/// Shortest checkpoint interval and grace period (a minute), so that keepers on a real cluster
/// can meet them.
pub const MIN_INTERVAL_SECONDS: i64 = 60;
/// Longest delay between an admin's parameter change and its effect (30 days).
pub const MAX_PARAM_CHANGE_DELAY: i64 = 30 * 24 * 60 * 60;
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
    /// Share of a slashed amount that goes to the treasury (the rest to the user, up to the
    /// compensation cap), bps.
    pub slash_treasury_bps: u16,
    /// Distinct active members of a lease's committee that must sign a slash.
    pub slash_quorum: u8,
    /// Most keepers that may be active at once.
    pub max_keepers: u16,
    /// Keepers drawn for each lease's verification committee (its first member posts the
    /// checkpoints; the others may co-sign slashes), `slash_quorum + 1..=7` so that a quorum
    /// remains when one member is the accused of a `keeper_slash`.
    pub committee_size: u8,
    /// Most a slash pays the user, as a share of what the user paid out of escrow for the
    /// lease (provider payments and fees), bps, at most 10,000: a user never gains by having
    /// its own lease slashed. The rest of a slash goes to the treasury.
    pub slash_compensation_bps: u16,
    /// Share of a keeper's bond that `keeper_slash` takes, bps.
    pub keeper_slash_fraction_bps: u16,
    /// Seconds a slashed provider stays jailed before restaking lets it take leases again.
    pub jail_period: i64,
    /// Seconds between `config_update` proposing new parameters and `config_apply` making
    /// them current (0 = at once), at most 30 days.
    pub param_change_delay: i64,
}

impl ConfigParams {
    /// Refuses nonsense with a named error. `active_keepers` is the current keeper count
    /// (zero at init); `decimals` the mint's, for the floors (one whole token).
    pub fn validate(&self, active_keepers: u16, decimals: u8) -> Result<()> {
        require!(
            self.protocol_fee_bps <= MAX_PROTOCOL_FEE_BPS
                && self.keeper_fee_bps <= MAX_KEEPER_FEE_BPS,
            GpunetError::FeesTooHigh
        );
        require!(
            self.slash_fraction_bps <= BPS_DENOMINATOR
                && self.slash_treasury_bps <= BPS_DENOMINATOR
                && self.slash_compensation_bps <= BPS_DENOMINATOR
                && self.keeper_slash_fraction_bps <= BPS_DENOMINATOR,
            GpunetError::BpsOutOfRange
        );
        let one_token = 10u64
            .checked_pow(u32::from(decimals))
            .ok_or_else(|| error!(GpunetError::MathOverflow))?;
        require!(
            self.keeper_bond >= one_token,
            GpunetError::InvalidKeeperBond
        );
        require!(
            self.min_stake_per_gpu.iter().all(|m| *m >= one_token),
            GpunetError::InvalidMinStake
        );
        for period in [
            self.unbonding_period,
            self.checkpoint_interval,
            self.grace_period,
            self.jail_period,
        ] {
            require!(
                period > 0 && period <= MAX_PERIOD_SECONDS,
                GpunetError::InvalidPeriod
            );
        }
        require!(
            self.checkpoint_interval >= MIN_INTERVAL_SECONDS
                && self.grace_period >= MIN_INTERVAL_SECONDS,
            GpunetError::InvalidPeriod
        );
        // Stake on its way out must stay in reach until a late keeper could have acted.
        require!(
            self.unbonding_period >= self.checkpoint_interval.saturating_add(self.grace_period),
            GpunetError::InvalidPeriod
        );
        require!(
            self.param_change_delay >= 0 && self.param_change_delay <= MAX_PARAM_CHANGE_DELAY,
            GpunetError::InvalidPeriod
        );
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
        require!(
            self.committee_size > self.slash_quorum
                && usize::from(self.committee_size) <= MAX_COMMITTEE,
            GpunetError::InvalidCommitteeSize
        );
        Ok(())
    }
}

/// Singleton config account, PDA `[CONFIG_SEED]`. Written by the admin (`config_init`,
/// `config_update`, `config_accept_admin`, `treasury_withdraw`), by anyone applying a due
/// parameter change (`config_apply`), and by the keeper set's changes (`active_keepers`,
/// `keeper_set_changed_slot`).
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
    /// The treasury vault, PDA `[TREASURY_SEED]`: a token account of `mint` whose authority is
    /// this config. Receives protocol fees and the treasury's share of slashes; only
    /// `treasury_withdraw` (admin) moves tokens out, and nobody can close it, so checkpoints and
    /// slashes can never be blocked by a missing treasury.
    pub treasury: Pubkey,
    /// The economic parameters in force. Leases copy the terms they depend on at open
    /// ([`crate::state::LeaseTerms`]), so a change reaches new leases only.
    pub params: ConfigParams,
    /// Parameters proposed by the admin, current from `pending_params_at` (`config_apply`).
    pub pending_params: ConfigParams,
    /// Unix time from which `pending_params` may be applied; 0 when nothing is pending.
    pub pending_params_at: i64,
    /// Keepers currently active (registered, not draining, not unbonding). Maintained by
    /// `keeper_register`, `keeper_drain`, `keeper_deregister` and `keeper_slash`.
    pub active_keepers: u16,
    /// Slot of the last change to the active keeper set. A committee is drawn from a slot hash
    /// later than both the lease's open and this, so changing the set after seeing a hash
    /// re-rolls nothing for free: it only moves the draw to a hash nobody knows yet.
    pub keeper_set_changed_slot: u64,
    /// When true, new business stops: registrations, new leases, draws, checkpoints,
    /// reassignments and slashes. Exits (closing leases, top-ups, withdrawals, keeper exits)
    /// keep working.
    pub paused: bool,
    /// Unix time the current pause began; 0 when not paused.
    pub paused_at: i64,
    /// Seconds the protocol has been paused in all, ended pauses only. Deadlines (grace,
    /// reassignment) are extended by the paused time they span.
    pub paused_seconds: i64,
    /// PDA bump.
    pub bump: u8,
    /// PDA bump of the treasury vault.
    pub treasury_bump: u8,
    /// Reserved for growth.
    pub reserved: [u8; 64],
}

impl Config {
    /// Minimum total stake for `count` GPUs of `class`.
    pub fn min_stake(&self, class: GpuClass, count: u16) -> Result<u64> {
        crate::math::safe_mul(
            self.params.min_stake_per_gpu[class.index()],
            u64::from(count),
        )
    }

    /// Paused seconds in all up to `now`, the running pause included. Deadlines measured from a
    /// moment `t` are extended by `paused_seconds_at(now) - paused_seconds_at(t)`.
    pub fn paused_seconds_at(&self, now: i64) -> Result<i64> {
        let running = if self.paused {
            now.saturating_sub(self.paused_at).max(0)
        } else {
            0
        };
        crate::math::safe_add_time(self.paused_seconds, running)
    }

    /// Records one more change to the active keeper set at `slot`.
    pub fn keeper_set_changed(&mut self, slot: u64) {
        self.keeper_set_changed_slot = self.keeper_set_changed_slot.max(slot);
    }

    /// Fails with [`GpunetError::ProtocolPaused`] when the protocol is paused.
    pub fn require_not_paused(&self) -> Result<()> {
        require!(!self.paused, GpunetError::ProtocolPaused);
        Ok(())
    }

    /// Rules that hold after every instruction that writes the config.
    pub fn invariant(&self) -> Result<()> {
        self.params
            .validate(self.active_keepers, self.mint_decimals)
            .map_err(|_| error!(GpunetError::InvariantViolated))?;
        if self.pending_params_at != 0 {
            self.pending_params
                .validate(0, self.mint_decimals)
                .map_err(|_| error!(GpunetError::InvariantViolated))?;
        }
        require!(
            self.paused == (self.paused_at != 0) && self.paused_seconds >= 0,
            GpunetError::InvariantViolated
        );
        require!(
            self.admin != Pubkey::default(),
            GpunetError::InvariantViolated
        );
        Ok(())
    }
}
