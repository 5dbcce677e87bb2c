//! Leases: a user's reservation of GPUs on one provider, paid from escrow as keepers verify it.
//!
//! Lease state machine (see docs/program.md):
//!
//! ```text
//!  lease_open ──▶ Active ──(now ≥ funded_until)──▶ out of funds (paused, reservation held)
//!                   │  ▲                                  │ lease_top_up within grace
//!                   │  └──────────────────────────────────┘
//!                   │ provider_slash ──▶ Ended
//!                   ▼
//!   lease_close: by the user any time; by anyone once Ended or after funded_until + grace
//! ```

use anchor_lang::prelude::*;

use crate::error::GpunetError;
use crate::math::{cost, safe_add, safe_add_time, seconds_funded};

/// Whether the lease still runs.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum LeaseStatus {
    /// Open; keepers post checkpoints.
    Active,
    /// Ended by a slash; only `lease_close` remains (refund and rent back).
    Ended,
}

/// A keeper's verdict on one checkpoint period.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub enum Verdict {
    /// No checkpoint yet.
    None,
    /// The proof verified: the period is paid.
    Pass,
    /// The proof failed: the period is not paid; its escrow goes back to the user at close.
    Fail,
}

/// One lease, PDA `[LEASE_SEED, user, nonce]`. Its escrow sits in the vault
/// `[LEASE_VAULT_SEED, lease]`, a token account whose authority is this PDA.
///
/// Fixed-size fields come first so that clients can filter with `memcmp`: user at byte 8,
/// provider at 40, keeper at 72.
#[account]
#[derive(InitSpace, Debug)]
pub struct Lease {
    /// The user's wallet; signed `lease_open`; receives refunds and slash compensation.
    pub user: Pubkey,
    /// The provider account (not its wallet) the GPUs come from.
    pub provider: Pubkey,
    /// The keeper account assigned to verify and checkpoint this lease.
    pub keeper: Pubkey,
    /// Who paid the rent of the lease and its vault; gets it back at close.
    pub rent_payer: Pubkey,
    /// The user's nonce in the PDA seeds.
    pub nonce: u64,
    /// Active or ended.
    pub status: LeaseStatus,
    /// GPUs reserved.
    pub gpus: u16,
    /// Price per GPU-second fixed at open (never above what the user signed for), base units.
    pub price_per_gpu_second: u64,
    /// Provider stake locked for this lease's life, base units.
    pub stake_locked: u64,
    /// Tokens deposited into escrow, ever (open plus top-ups).
    pub funded: u64,
    /// Paid to the provider out of escrow.
    pub paid_provider: u64,
    /// Paid to the treasury as protocol fees out of escrow.
    pub paid_protocol: u64,
    /// Paid to keepers as keeper fees out of escrow.
    pub paid_keeper: u64,
    /// Refunded to the user out of escrow (set at close).
    pub refunded: u64,
    /// Paid to the user from the provider's stake by a slash (not escrow).
    pub compensation: u64,
    /// Unix time the lease opened; billing starts here.
    pub start: i64,
    /// Unix time up to which checkpoints have settled the lease (paid or failed).
    pub paid_until: i64,
    /// Unix time of the last checkpoint (or of the open), for keeper liveness.
    pub last_checkpoint_at: i64,
    /// Sequence number of the last checkpoint; the next must be exactly one more.
    pub last_sequence: u64,
    /// SHA-256 digest of the last checkpoint's proof transcript.
    pub last_digest: [u8; 32],
    /// Verdict of the last checkpoint.
    pub last_verdict: Verdict,
    /// Score measured by the last checkpoint.
    pub last_score: u64,
    /// PDA bump of this account.
    pub bump: u8,
    /// PDA bump of the escrow vault.
    pub vault_bump: u8,
    /// Reserved for growth.
    pub reserved: [u8; 64],
}

impl Lease {
    /// Tokens per second.
    pub fn rate(&self) -> Result<u64> {
        crate::math::lease_rate(self.price_per_gpu_second, self.gpus)
    }

    /// Unix time up to which the escrow pays: `start + funded / rate` (whole seconds).
    pub fn funded_until(&self) -> Result<i64> {
        safe_add_time(self.start, seconds_funded(self.funded, self.rate()?)?)
    }

    /// Tokens that should still be in escrow.
    pub fn escrow_due(&self) -> Result<u64> {
        let out = safe_add(
            safe_add(self.paid_provider, self.paid_protocol)?,
            safe_add(self.paid_keeper, self.refunded)?,
        )?;
        crate::math::safe_sub(self.funded, out)
    }

    /// Whether anyone (not only the user) may close it at `now`.
    pub fn closable_by_anyone(&self, now: i64, grace_period: i64) -> Result<bool> {
        Ok(self.status == LeaseStatus::Ended
            || now > safe_add_time(self.funded_until()?, grace_period)?)
    }

    /// The escrow vault must hold at least what the books say is left (gifts tolerated).
    pub fn check_vault(&self, vault_amount: u64) -> Result<()> {
        require!(
            vault_amount >= self.escrow_due()?,
            GpunetError::InvariantViolated
        );
        Ok(())
    }

    /// Rules that hold after every instruction that writes a lease.
    pub fn invariant(&self) -> Result<()> {
        require!(self.gpus > 0, GpunetError::InvariantViolated);
        // funded = paid + fees + refunded + escrow: escrow_due fails if out > funded.
        self.escrow_due()?;
        require!(
            self.start <= self.paid_until && self.paid_until <= self.funded_until()?,
            GpunetError::InvariantViolated
        );
        // Never paid for more time than has been settled.
        let paid_gross = safe_add(
            safe_add(self.paid_provider, self.paid_protocol)?,
            self.paid_keeper,
        )?;
        require!(
            paid_gross <= cost(self.rate()?, self.paid_until - self.start)?,
            GpunetError::InvariantViolated
        );
        Ok(())
    }
}
