//! Leases: a user's reservation of GPUs on one provider, paid from escrow as keepers verify it.
//!
//! Lease state machine (see docs/program.md):
//!
//! ```text
//!  lease_open ──▶ Pending ──lease_draw_committee (a slot hash after the open)──▶ Active
//!                                  Active ──(now ≥ funded_until)──▶ out of funds (reservation held)
//!                                    │  ▲                                  │ lease_top_up within grace
//!                                    │  └──────────────────────────────────┘
//!                                    │ lease_resize: a new GPU count from the request, applied by
//!                                    │ the checkpoint that settles up to it
//!                                    │ provider_slash ──▶ Ended
//!                                    ▼
//!   lease_close: by the user any time; by anyone once Ended or after funded_until + grace
//!   (grace extended by the time the protocol was paused)
//! ```
//!
//! Billing starts when the committee is drawn (`start`), not at the open: before that nobody
//! can verify the GPUs.

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
    /// Opened, committee not drawn yet: nobody checkpoints and nothing is billed.
    Pending,
}

/// The terms a lease depends on, copied from the config at open: an admin's later change
/// applies to new leases only.
#[derive(AnchorSerialize, AnchorDeserialize, Clone, Copy, Debug, PartialEq, Eq, InitSpace)]
pub struct LeaseTerms {
    /// Share of each checkpoint's gross that goes to the treasury (Pass only), bps.
    pub protocol_fee_bps: u16,
    /// Share of each checkpoint's gross that goes to the keeper, bps (Pass or Fail alike).
    pub keeper_fee_bps: u16,
    /// Share of the locked stake a slash takes, bps.
    pub slash_fraction_bps: u16,
    /// Share of a slash that goes to the treasury, bps.
    pub slash_treasury_bps: u16,
    /// Cap on the user's compensation, as a share of what it paid out of escrow, bps.
    pub slash_compensation_bps: u16,
    /// Committee members that must co-sign a slash.
    pub slash_quorum: u8,
    /// Keepers drawn for the committee.
    pub committee_size: u8,
    /// Seconds between checkpoints.
    pub checkpoint_interval: i64,
    /// Seconds of slack for late funds and late keepers.
    pub grace_period: i64,
}

impl LeaseTerms {
    /// The terms of `params`, as a lease opened now agrees to them.
    pub fn from_params(p: &crate::state::ConfigParams) -> Self {
        LeaseTerms {
            protocol_fee_bps: p.protocol_fee_bps,
            keeper_fee_bps: p.keeper_fee_bps,
            slash_fraction_bps: p.slash_fraction_bps,
            slash_treasury_bps: p.slash_treasury_bps,
            slash_compensation_bps: p.slash_compensation_bps,
            slash_quorum: p.slash_quorum,
            committee_size: p.committee_size,
            checkpoint_interval: p.checkpoint_interval,
            grace_period: p.grace_period,
        }
    }
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
    /// The keeper account that posts this lease's checkpoints: the first member of the
    /// committee, or its successor after a reassignment; `Pubkey::default()` while `Pending`.
    pub keeper: Pubkey,
    /// Who paid the rent of the lease and its vault; gets it back at close.
    pub rent_payer: Pubkey,
    /// The user's nonce in the PDA seeds.
    pub nonce: u64,
    /// Pending, active or ended.
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
    /// Unix time billing started: the committee draw (the open while `Pending`).
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
    /// Slot of the open: the committee comes from the hash of a later slot.
    pub opened_slot: u64,
    /// The terms agreed at open.
    pub terms: LeaseTerms,
    /// The verification committee (keeper accounts), drawn by `lease_draw_committee`; the
    /// first `committee_len` entries are used.
    pub committee: [Pubkey; crate::state::config::MAX_COMMITTEE],
    /// Members of `committee` in use.
    pub committee_len: u8,
    /// `config.paused_seconds_at` when the lease was last opened, drawn, checkpointed or
    /// reassigned (not at top-ups): paused time since then extends its deadlines.
    pub paused_mark: i64,
    /// Highest checkpoint sequence a `keeper_slash` has judged: each checkpoint is judged once.
    pub judged_sequence: u64,
    /// Unix time the current GPU count took effect (a partial slash shrank the lease); 0
    /// while the count is the one opened. Billing runs at the current rate from
    /// [`Lease::rate_start`].
    pub rate_since: i64,
    /// What the escrow had paid out (provider, protocol and keeper) when the current GPU
    /// count took effect: the rest of `funded` buys time at the current rate.
    pub spent_before_rate: u64,
    /// `last_sequence + 1` at the last `provider_slash` (0: never slashed): a provider is
    /// slashed at most once per checkpoint, so a slash sent twice (a keeper retrying after a
    /// crash) cannot take the same GPUs' stake twice.
    pub slashed_sequence: u64,
    /// GPU count a `lease_resize` asked for, applied once checkpoints have settled the lease
    /// up to `resize_at` (0: no resize pending).
    pub pending_gpus: u16,
    /// Unix time from which `pending_gpus` bills: the request (0: no resize pending).
    /// Checkpoints settle at the current rate up to it and no further until it applies.
    pub resize_at: i64,
    /// Provider stake a pending grow has already locked for its extra GPUs (the provider's
    /// `gpus_leased` and `locked` count them from the request on).
    pub pending_stake: u64,
    /// Unspent escrow refunded to the user by a shrink while the lease runs (`refunded` is
    /// what the close refunds).
    pub withdrawn: u64,
    /// Reserved for growth.
    pub reserved: [u8; 14],
}

impl Lease {
    /// Tokens per second.
    pub fn rate(&self) -> Result<u64> {
        crate::math::lease_rate(self.price_per_gpu_second, self.gpus)
    }

    /// Unix time from which the current rate bills: the start, or when the GPU count last
    /// changed.
    pub fn rate_start(&self) -> i64 {
        self.start.max(self.rate_since)
    }

    /// Unix time up to which the escrow pays: `rate_start + (funded - withdrawn -
    /// spent_before_rate) / rate` (whole seconds; `start + funded / rate` for a lease whose
    /// GPU count never changed).
    pub fn funded_until(&self) -> Result<i64> {
        safe_add_time(
            self.rate_start(),
            seconds_funded(self.segment_budget()?, self.rate()?)?,
        )
    }

    /// Escrow the current rate's segment may spend: deposits, less what a shrink refunded,
    /// less what was paid out before the segment began.
    pub fn segment_budget(&self) -> Result<u64> {
        crate::math::safe_sub(
            crate::math::safe_sub(self.funded, self.withdrawn)?,
            self.spent_before_rate,
        )
    }

    /// Whether a `lease_resize` waits for checkpoints to reach `resize_at`.
    pub fn resize_pending(&self) -> bool {
        self.pending_gpus != 0
    }

    /// What a lease resized to `gpus` at `at` needs in its current segment's budget so that
    /// its escrow still lasts until the same time: the current rate up to `at`, the new rate
    /// from `at` to today's `funded_until` (nothing past `at` when the funds ran out before).
    pub fn budget_for_resize(&self, gpus: u16, at: i64) -> Result<u64> {
        let funded_until = self.funded_until()?;
        let new_rate = crate::math::lease_rate(self.price_per_gpu_second, gpus)?;
        safe_add(
            cost(self.rate()?, at - self.rate_start())?,
            cost(new_rate, funded_until.max(at) - at)?,
        )
    }

    /// Applies the pending resize once checkpoints have settled the lease up to `resize_at`:
    /// the new rate's segment starts there. Returns the GPUs and stake the provider gets back
    /// (a shrink), or zeros (a grow: its GPUs and stake were booked at the request).
    pub fn apply_resize(&mut self) -> Result<(u16, u64)> {
        require!(
            self.resize_pending() && self.paid_until == self.resize_at,
            GpunetError::InvariantViolated
        );
        let target = self.pending_gpus;
        let released = if target < self.gpus {
            let by = self.gpus - target;
            (by, self.shrink(by)?)
        } else {
            self.spent_before_rate = self.paid_by_user()?;
            self.rate_since = self.paid_until;
            self.gpus = target;
            self.stake_locked = safe_add(self.stake_locked, self.pending_stake)?;
            (0, 0)
        };
        self.clear_resize();
        Ok(released)
    }

    /// Drops a pending resize (a slash or the close). Returns the GPUs and stake a pending
    /// grow had booked on the provider, which the caller releases.
    pub fn cancel_resize(&mut self) -> (u16, u64) {
        let booked = if self.pending_gpus > self.gpus {
            (self.pending_gpus - self.gpus, self.pending_stake)
        } else {
            (0, 0)
        };
        self.clear_resize();
        booked
    }

    fn clear_resize(&mut self) {
        self.pending_gpus = 0;
        self.resize_at = 0;
        self.pending_stake = 0;
    }

    /// Takes `by` GPUs out of an active lease from `paid_until` on (a partial slash): the
    /// current rate's segment restarts there, so the escrow not yet paid out buys time at the
    /// smaller rate, and the lease keeps `stake_locked` in proportion to the GPUs left.
    /// Returns the stake that leaves the lease with the GPUs (rounded up, so the lease never
    /// keeps more stake per GPU than it had). `by` must leave at least one GPU.
    pub fn shrink(&mut self, by: u16) -> Result<u64> {
        require!(by > 0 && by < self.gpus, GpunetError::InvalidSlashGpus);
        let kept = crate::math::stake_share(self.stake_locked, self.gpus - by, self.gpus)?;
        let leaving = crate::math::safe_sub(self.stake_locked, kept)?;
        self.spent_before_rate = self.paid_by_user()?;
        self.rate_since = self.paid_until;
        self.gpus -= by;
        self.stake_locked = kept;
        Ok(leaving)
    }

    /// Tokens that should still be in escrow.
    pub fn escrow_due(&self) -> Result<u64> {
        let out = safe_add(
            safe_add(self.paid_provider, self.paid_protocol)?,
            safe_add(safe_add(self.paid_keeper, self.refunded)?, self.withdrawn)?,
        )?;
        crate::math::safe_sub(self.funded, out)
    }

    /// Whether anyone (not only the user) may close it at `now`; `paused_now` is
    /// `config.paused_seconds_at(now)`.
    pub fn closable_by_anyone(&self, now: i64, paused_now: i64) -> Result<bool> {
        Ok(self.status == LeaseStatus::Ended || now > self.expires_at(paused_now)?)
    }

    /// Unix time after which the lease can no longer be topped up: funds run out, plus the
    /// grace period, plus the time the protocol was paused since the lease last changed.
    pub fn expires_at(&self, paused_now: i64) -> Result<i64> {
        safe_add_time(
            safe_add_time(self.funded_until()?, self.terms.grace_period)?,
            self.paused_since_mark(paused_now),
        )
    }

    /// Paused seconds since `paused_mark`.
    pub fn paused_since_mark(&self, paused_now: i64) -> i64 {
        paused_now.saturating_sub(self.paused_mark).max(0)
    }

    /// The committee members in use.
    pub fn committee(&self) -> &[Pubkey] {
        &self.committee[..usize::from(self.committee_len).min(self.committee.len())]
    }

    /// Whether `keeper` (a keeper account) is on this lease's committee.
    pub fn in_committee(&self, keeper: &Pubkey) -> bool {
        self.committee().contains(keeper)
    }

    /// What the user has paid out of escrow for this lease: provider payments and fees.
    pub fn paid_by_user(&self) -> Result<u64> {
        safe_add(
            safe_add(self.paid_provider, self.paid_protocol)?,
            self.paid_keeper,
        )
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
        require!(
            usize::from(self.committee_len) <= self.committee.len()
                && (self.status == LeaseStatus::Pending) == (self.committee_len == 0)
                && (self.status == LeaseStatus::Pending) == (self.keeper == Pubkey::default()),
            GpunetError::InvariantViolated
        );
        if self.status != LeaseStatus::Pending {
            require!(
                self.in_committee(&self.keeper),
                GpunetError::InvariantViolated
            );
        }
        require!(
            self.compensation <= self.paid_by_user()?,
            GpunetError::InvariantViolated
        );
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
            self.slashed_sequence <= self.last_sequence.saturating_add(1),
            GpunetError::InvariantViolated
        );
        // A pending resize: a new count that differs, from a time not yet settled; stake booked
        // only by a grow.
        if self.resize_pending() {
            require!(
                self.pending_gpus != self.gpus
                    && self.status == LeaseStatus::Active
                    && self.paid_until <= self.resize_at
                    && (self.pending_gpus > self.gpus || self.pending_stake == 0),
                GpunetError::InvariantViolated
            );
        } else {
            require!(
                self.resize_at == 0 && self.pending_stake == 0,
                GpunetError::InvariantViolated
            );
        }
        // Never paid for more time than has been settled, within the current rate's segment
        // (what was paid before it was settled at the rate of its time).
        require!(
            self.spent_before_rate <= paid_gross
                && self.rate_start() <= self.paid_until
                && paid_gross - self.spent_before_rate
                    <= cost(self.rate()?, self.paid_until - self.rate_start())?,
            GpunetError::InvariantViolated
        );
        Ok(())
    }
}
