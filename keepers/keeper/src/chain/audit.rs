//! The auditor: committee members check each other's payouts.
//!
//! Every `tick`, for each lease whose committee this keeper sits on but which another keeper
//! serves, each checkpoint posted since the last tick is drawn into the sample with
//! probability `sample` (by a hash of this keeper, the lease and the sequence: a restart draws
//! the same sample, and different members draw different ones). A drawn checkpoint is
//! re-verified from the transcript its keeper serves ([`gpunet_sdk::audit`]). A false one is
//! slashed at once with the committee ([`super::slash`]); one whose transcript cannot be had is
//! tried again each tick and slashed as withheld once the transcript window has passed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use gpunet_sdk::audit::{AuditOutcome, audit_posted, checkpoints_posted};
use gpunet_sdk::gpunet::state::LeaseStatus;
use gpunet_sdk::{GpunetClient, LeaseFilter, SdkError};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use solana_sdk::pubkey::Pubkey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::slash::{Committee, Fault};
use crate::metrics::{Metrics, label};

/// What one audit pass found wrong and acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The lease.
    pub lease: Pubkey,
    /// The checkpoint.
    pub sequence: u64,
    /// The keeper account that posted it.
    pub keeper: Pubkey,
    /// Whether the slash was sent (it may wait for the transcript window, or for a quorum).
    pub slashed: bool,
}

/// Re-verifies other committee members' checkpoints and slashes false ones.
pub struct Auditor {
    client: GpunetClient,
    committee: Arc<Committee>,
    sample: f64,
    metrics: Metrics,
    /// Checkpoints settled for this keeper: verified, slashed, or not drawn.
    done: Mutex<HashSet<(Pubkey, u64)>>,
    /// Checkpoints found wrong whose slash has not been sent yet.
    unresolved: Mutex<HashSet<(Pubkey, u64)>>,
    /// Per lease, the highest sequence looked at.
    seen: Mutex<HashMap<Pubkey, u64>>,
}

impl Auditor {
    /// An auditor for `committee`'s keeper drawing `sample` (0..=1) of the checkpoints.
    pub fn new(rpc_url: &str, committee: Arc<Committee>, sample: f64, metrics: Metrics) -> Self {
        Auditor {
            client: GpunetClient::new(rpc_url.to_string()),
            committee,
            sample: sample.clamp(0.0, 1.0),
            metrics,
            done: Mutex::new(HashSet::new()),
            unresolved: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this keeper audits checkpoint `sequence` of `lease`.
    fn drawn(&self, lease: &Pubkey, sequence: u64) -> bool {
        let h: [u8; 32] = Sha256::new()
            .chain_update(b"gpunet-audit-sample-v1")
            .chain_update(self.committee.keeper().as_ref())
            .chain_update(lease.as_ref())
            .chain_update(sequence.to_le_bytes())
            .finalize()
            .into();
        let x = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
        (x as f64) < self.sample * (u64::MAX as f64)
    }

    /// One pass over every lease this keeper audits; what it found wrong.
    pub async fn tick(&self) -> Result<Vec<Finding>, SdkError> {
        let me = self.committee.keeper();
        let leases = self.client.leases(LeaseFilter::All).await?;
        let mut found = Vec::new();
        for (address, lease) in leases {
            if lease.status == LeaseStatus::Pending || !lease.in_committee(&me) {
                continue;
            }
            let seen = self.seen.lock().get(&address).copied().unwrap_or(0);
            let retry = self.unresolved.lock().iter().any(|(l, _)| *l == address);
            if lease.last_sequence <= seen && !retry {
                continue;
            }
            let posted = checkpoints_posted(&self.client, &address).await?;
            for (p, _) in &posted {
                let key = (address, p.sequence);
                if p.sequence <= lease.judged_sequence {
                    // Judged (by this keeper's committee or another slash): nothing to do.
                    self.unresolved.lock().remove(&key);
                    continue;
                }
                if p.keeper == me || self.done.lock().contains(&key) {
                    continue;
                }
                if !self.drawn(&address, p.sequence) {
                    self.done.lock().insert(key);
                    continue;
                }
                let Some(audit) = audit_posted(&self.client, &address, &posted, p.sequence).await?
                else {
                    continue;
                };
                let outcome = audit.outcome;
                let kind = match &outcome {
                    AuditOutcome::Verified { .. } => "verified",
                    AuditOutcome::Mismatch(_) => "mismatch",
                    AuditOutcome::Unavailable(_) => "unavailable",
                };
                self.metrics
                    .checkpoints_audited
                    .get_or_create(&label("outcome", kind))
                    .inc();
                if let AuditOutcome::Verified { .. } = outcome {
                    self.unresolved.lock().remove(&key);
                    self.done.lock().insert(key);
                    continue;
                }
                warn!(lease = %address, sequence = p.sequence, keeper = %p.keeper, ?outcome,
                      "a member's checkpoint does not hold up");
                let fault = Fault::Keeper {
                    accused: p.keeper,
                    sequence: p.sequence,
                };
                let slashed = match self.committee.slash(&address, fault).await {
                    Ok(sig) => {
                        info!(lease = %address, sequence = p.sequence, %sig, "keeper slashed");
                        self.unresolved.lock().remove(&key);
                        self.done.lock().insert(key);
                        true
                    }
                    Err(e) => {
                        // Withheld but still inside the window, or no quorum yet: next tick.
                        info!(lease = %address, sequence = p.sequence, error = %e,
                              "keeper slash not sent yet");
                        self.unresolved.lock().insert(key);
                        false
                    }
                };
                found.push(Finding {
                    lease: address,
                    sequence: p.sequence,
                    keeper: p.keeper,
                    slashed,
                });
            }
            self.seen.lock().insert(address, lease.last_sequence);
        }
        Ok(found)
    }

    /// Runs [`Auditor::tick`] every `every` until `cancel`.
    pub async fn run(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        super::every(every, cancel, || async {
            if let Err(e) = self.tick().await {
                self.metrics.chain_read_errors.inc();
                warn!(error = %e, "audit pass failed; retrying next tick");
            }
        })
        .await;
    }
}
