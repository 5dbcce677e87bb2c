//! The checkpointer: turns benchmark proofs into `lease_checkpoint` transactions.
//!
//! Every `tick`, for each lease this keeper serves whose period is due on the chain's clock
//! (`checkpoint_interval` since `paid_until`, or its escrow runs out), every worker of the
//! lease's cluster is challenged at the same moment (one GPU cannot answer for eight). All pass:
//! the period is posted `Pass` and the escrow pays the provider; any fails, or the lease's GPUs
//! are still not all connected half a grace period after the interval: it is posted `Fail`
//! (unpaid; refunded at close). Until then a period with missing GPUs waits (workers
//! reconnecting after a restart do not cost the provider a period). The digest posted is the
//! proof transcript's, or, for several workers, SHA-256 over their digests in worker order;
//! each transcript stays in the keeper's evidence table, where `GetTranscript` serves it.
//!
//! A period failed because a worker's own signed answer is wrong (not merely slow) is also
//! evidence against the provider: with a [`Committee`], the checkpointer then slashes it with
//! a quorum of the lease's committee ([`super::slash`]) for the GPUs those workers answered
//! for. So is a failed period while workers that owe the lease GPUs ([`gpunet_sdk::plan`])
//! have been silent past the grace period, as this keeper and each co-signer saw it
//! ([`crate::liveness`]): the slash takes the GPUs they owe. When GPUs remain, the lease goes
//! on with them: the failed workers leave its cluster for good and their tasks run again on
//! the healthy ones.
//!
//! Exactly once without a local ledger: the program accepts only sequence `last + 1` starting
//! at `paid_until`, so a checkpoint sent twice (a retry, a restart after SIGKILL) is refused
//! the second time (`SequenceNotNext`) and a period can be neither paid twice nor skipped. The
//! state to resume from is the lease account itself, read fresh before each attempt.

use std::sync::Arc;
use std::time::Duration;

use gpunet_proto::v1 as pb;
use gpunet_sdk::gpunet::instructions::LeaseCheckpointArgs;
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::{GpunetClient, Lease, SdkError, Verdict, pda, token};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use solana_sdk::signer::Signer;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::directory::ChainDirectory;
use super::evidence::{self, EvidenceError};
use super::slash::{Committee, Fault, SlashError};
use super::submit::Submitter;
use crate::core::Core;
use crate::metrics::label;
use crate::proofs::{ProveOptions, Prover};

/// Why a checkpoint was not posted (the next tick tries again).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading the chain or sending the transaction failed.
    #[error("chain: {0}")]
    Chain(#[from] SdkError),
    /// The record could not be made durable first.
    #[error("keeper store: {0}")]
    Store(#[from] crate::error::KeeperError),
}

/// What one checkpoint attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// Not due yet.
    NotDue,
    /// Due, but not every GPU of the lease is connected yet: judged later (see
    /// [`Checkpointer::checkpoint`]).
    Waiting,
    /// Posted.
    Posted {
        /// The checkpoint's sequence.
        sequence: u64,
        /// Its verdict.
        verdict: Verdict,
    },
    /// Someone (this keeper before a restart) already posted it.
    AlreadyPosted,
    /// Posted `Fail` because workers failed by their own doing, and the provider slashed for
    /// it with the lease's committee.
    Slashed {
        /// The failed checkpoint's sequence.
        sequence: u64,
        /// The slash transaction.
        signature: solana_sdk::signature::Signature,
        /// GPUs the lease goes on with (0: it ended).
        gpus_left: u16,
    },
}

/// Posts the checkpoints of the leases a [`ChainDirectory`] serves.
pub struct Checkpointer {
    client: GpunetClient,
    submit: Submitter,
    wallet: Keypair,
    dir: Arc<ChainDirectory>,
    prover: Arc<Prover>,
    core: Arc<Core>,
    committee: Option<Arc<Committee>>,
}

impl Checkpointer {
    /// A checkpointer signing with the keeper's wallet `wallet` (the authority of the keeper
    /// account `dir` serves for).
    pub fn new(
        rpc_url: &str,
        wallet: Keypair,
        dir: Arc<ChainDirectory>,
        prover: Arc<Prover>,
        core: Arc<Core>,
    ) -> Self {
        Checkpointer {
            client: GpunetClient::new(rpc_url.to_string()),
            submit: Submitter::new(rpc_url, core.metrics.clone()),
            wallet,
            dir,
            prover,
            core,
            committee: None,
        }
    }

    /// Slashes the provider with `committee` when a worker fails a proof by its own doing
    /// (without one, such a period is only posted `Fail`).
    pub fn with_committee(mut self, committee: Arc<Committee>) -> Self {
        self.committee = Some(committee);
        self
    }

    /// Checkpoints `lease` if its period is due: proves every worker of its cluster and posts
    /// the verdict.
    pub async fn checkpoint(&self, address: &Pubkey) -> Result<Posted, CheckpointError> {
        let lease = self.client.lease(address).await?;
        let now = self.client.chain_time().await?;
        self.core
            .metrics
            .checkpoint_lag_seconds
            .get_or_create(&label("lease", address.to_string()))
            .set(now.saturating_sub(lease.paid_until));
        let Some(period_end) = due(&lease, now) else {
            return Ok(Posted::NotDue);
        };
        // Not every GPU of the lease is connected (workers reconnecting after a restart of
        // this keeper or of theirs): judge the period only once half the grace period has
        // passed beyond its interval — still well before a successor may take the lease.
        let id: Arc<str> = address.to_string().into();
        let complete = self
            .core
            .cluster(&id)
            .is_ok_and(|c| !c.workers.is_empty() && c.gpus_ready >= c.gpus_requested);
        let patience = lease
            .paid_until
            .saturating_add(lease.terms.checkpoint_interval)
            .saturating_add(lease.terms.grace_period / 2);
        if !complete && now < patience {
            return Ok(Posted::Waiting);
        }
        // The freshest chain point for the challenges (the watcher's may be seconds old): a
        // co-signer accepts a failure as evidence only while its anchor is in SlotHashes.
        let (slot, slot_hash, epoch) = self.client.recent_slot_hash().await?;
        self.dir.set_anchor(crate::proofs::Anchor {
            slot,
            slot_hash,
            epoch,
        });
        let (verdict, digest, score, proofs) = self.prove_all(address).await;
        // GPUs missing past the patience: the lease was not served whole, however well the
        // connected workers prove (the period is not paid for GPUs that were not there).
        let verdict = if complete { verdict } else { Verdict::Fail };
        let sequence = lease.last_sequence + 1;
        // Read again: a checkpoint posted while the proofs ran (by this keeper's previous
        // life, or the lease moved) makes this one stale.
        let fresh = self.client.lease(address).await?;
        if fresh.last_sequence >= sequence || fresh.keeper != self.dir.keeper() {
            return Ok(Posted::AlreadyPosted);
        }
        let config = self.client.config().await?;
        let provider = self
            .client
            .fetch::<gpunet_sdk::Provider>("provider", &lease.provider)
            .await?;
        let parties = LeaseParties {
            lease: *address,
            provider: lease.provider,
            keeper: self.dir.keeper(),
            mint: config.mint,
            treasury: pda::treasury(),
        };
        let args = LeaseCheckpointArgs {
            sequence,
            period_start: lease.paid_until,
            period_end,
            proof_digest: digest,
            verdict,
            score,
        };
        // Recorded before it is sent, so that whatever lands on chain can be served to
        // auditors (a record whose transaction never lands is simply never asked for: the
        // next attempt with the same sequence replaces it).
        let record = pb::CheckpointTranscript {
            lease_id: address.to_string(),
            sequence,
            period_start: lease.paid_until,
            period_end,
            pass: verdict == Verdict::Pass,
            digest: digest.to_vec().into(),
            score,
            proofs,
            slash: String::new(),
        };
        self.core.record_checkpoint(record.clone()).await?;
        let ixn = ix::lease_checkpoint(
            &self.wallet.pubkey(),
            &parties,
            &token::ata(&provider.authority, &config.mint),
            &token::ata(&self.wallet.pubkey(), &config.mint),
            args,
        );
        match self.submit.send("checkpoint", &[ixn], &self.wallet).await {
            Ok(sig) => {
                self.core.metrics.checkpoints_posted.inc();
                info!(lease = %address, sequence, ?verdict, period_end, %sig, "checkpoint posted");
                if verdict == Verdict::Fail
                    && let Some((signature, gpus_left)) = self.settle_slash(address, record).await
                {
                    return Ok(Posted::Slashed {
                        sequence,
                        signature,
                        gpus_left,
                    });
                }
                Ok(Posted::Posted { sequence, verdict })
            }
            Err(SdkError::Program { error, .. }) if error.name == "SequenceNotNext" => {
                Ok(Posted::AlreadyPosted)
            }
            Err(e) => {
                warn!(lease = %address, sequence, error = %e, "checkpoint refused or not sent");
                Err(e.into())
            }
        }
    }

    /// The lease after a slash: when it goes on, the failed workers leave its cluster (the
    /// watcher ends it otherwise). The GPUs it goes on with.
    async fn after_slash(&self, address: &Pubkey, faulty: &[Arc<str>]) -> u16 {
        match self.client.lease(address).await {
            Ok(l) if l.status == gpunet_sdk::LeaseStatus::Active => {
                self.core.resize_lease(
                    &address.to_string(),
                    faulty,
                    u32::from(l.gpus),
                    "its provider was slashed for this worker (a failed proof, or silence)",
                );
                info!(lease = %address, gpus = l.gpus, expelled = faulty.len(), "lease goes on with its healthy GPUs");
                l.gpus
            }
            Ok(_) => 0,
            Err(e) => {
                // The watcher sees the new count at its next read and resizes the cluster;
                // the failed workers are then only kept out by the next period's proofs.
                warn!(lease = %address, error = %e, "lease not read after the slash");
                0
            }
        }
    }

    /// Slashes the provider for the proofs of failed checkpoint `record` that failed by the
    /// worker's own doing, if any and not done yet, and records the outcome with the
    /// checkpoint: the slash's signature and the GPUs the lease goes on with once sent. A slash
    /// that could not be sent (co-signers unreachable) stays to do: the next tick tries again,
    /// after a restart too, until it is sent or its evidence no longer holds (then it is given
    /// up, saying why).
    async fn settle_slash(
        &self,
        address: &Pubkey,
        mut record: pb::CheckpointTranscript,
    ) -> Option<(solana_sdk::signature::Signature, u16)> {
        let committee = self.committee.as_ref()?;
        if record.pass || !record.slash.is_empty() {
            return None;
        }
        let faults: Vec<pb::ProofVerdict> = record
            .proofs
            .iter()
            .filter(|p| !p.ok && own_fault(p))
            .cloned()
            .collect();
        let (fault, workers): (Fault, Vec<Arc<str>>) = if !faults.is_empty() {
            let workers = faults.iter().map(|p| p.worker_id.as_str().into()).collect();
            (Fault::Provider(faults), workers)
        } else {
            // No worker failed by its own doing: is one that owes the lease GPUs silent past
            // the grace period?
            match evidence::find_silent(&self.client, address, committee.liveness()).await {
                Ok(silent) if silent.is_empty() => {
                    // Failed without evidence against the provider (a worker slow, or one
                    // missing for less than the grace period): no slash. Recorded, so later
                    // passes do not look again.
                    record.slash =
                        "none: no worker failed by its own doing or was silent past the grace \
                         period"
                            .into();
                    if let Err(e) = self.core.record_checkpoint(record).await {
                        warn!(lease = %address, error = %e, "checkpoint record not updated");
                    }
                    return None;
                }
                Ok(silent) => {
                    let workers = silent.iter().map(|w| w.to_string().into()).collect();
                    (Fault::Silent(silent), workers)
                }
                Err(EvidenceError::NotYet(why)) => {
                    debug!(lease = %address, sequence = record.sequence, why, "a worker may be silent past the grace period; looking again next tick");
                    return None;
                }
                Err(e) => {
                    warn!(lease = %address, sequence = record.sequence, error = %e, "silent workers not checked; retrying next tick");
                    return None;
                }
            }
        };
        let (outcome, done) = match committee.slash(address, fault).await {
            Ok(sig) => (format!("sent {sig}"), Some(sig)),
            Err(SlashError::Evidence(EvidenceError::Refuted(why))) => {
                warn!(lease = %address, sequence = record.sequence, why, "slash given up");
                (format!("given up: {why}"), None)
            }
            // Sent before (by this keeper before a crash, before it could record it): the
            // program takes one slash per checkpoint.
            Err(SlashError::Chain(SdkError::Program { error, .. }))
                if error.name == "AlreadySlashed" =>
            {
                (
                    "sent before (the chain refused a second slash)".to_string(),
                    None,
                )
            }
            Err(e) => {
                warn!(lease = %address, sequence = record.sequence, error = %e, "provider not slashed yet; retrying next tick");
                return None;
            }
        };
        record.slash = outcome;
        if let Err(e) = self.core.record_checkpoint(record).await {
            warn!(lease = %address, error = %e, "slash outcome not recorded");
        }
        let sig = done?;
        Some((sig, self.after_slash(address, &workers).await))
    }

    /// Sends the slash a failed checkpoint of `address` still calls for (see
    /// [`Self::settle_slash`]): the last checkpoint, as the lease's account says.
    pub async fn resume_slash(&self, address: &Pubkey, last_sequence: u64) -> Option<u16> {
        let record = self.core.checkpoint(&address.to_string(), last_sequence)?;
        self.settle_slash(address, record).await.map(|(_, g)| g)
    }

    /// Proves every worker of the lease's cluster at once. Pass only if every one passes and
    /// there is at least one; the digest covers all of them.
    async fn prove_all(&self, lease: &Pubkey) -> (Verdict, [u8; 32], u64, Vec<pb::ProofVerdict>) {
        let id: Arc<str> = lease.to_string().into();
        let workers = match self.core.cluster(&id) {
            Ok(c) => c.workers,
            Err(_) => Vec::new(),
        };
        let proofs = futures::future::join_all(workers.iter().map(|w| {
            self.prover
                .prove(&id, &w.worker_id, ProveOptions::default())
        }))
        .await;
        let mut verdicts: Vec<pb::ProofVerdict> = Vec::new();
        let mut all_ok = !workers.is_empty();
        for (w, p) in workers.iter().zip(proofs) {
            match p {
                Ok(v) => {
                    all_ok &= v.ok;
                    verdicts.push(v);
                }
                Err(e) => {
                    // Recorded as a failed proof without a transcript, so the record (and an
                    // auditor) sees every worker the period covered.
                    warn!(lease = %lease, worker = %w.worker_id, error = %e, "proof not run");
                    all_ok = false;
                    verdicts.push(pb::ProofVerdict {
                        verdict: pb::ProofOutcome::Failed as i32,
                        ok: false,
                        rejection: "internal".into(),
                        reason: e.to_string(),
                        worker_id: w.worker_id.clone(),
                        lease_id: lease.to_string(),
                        ..Default::default()
                    });
                }
            }
        }
        verdicts.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        let digest = combined_digest(&verdicts);
        let score = verdicts
            .iter()
            .map(|v| (v.measured_tops * 1000.0) as u64)
            .sum();
        let verdict = if all_ok { Verdict::Pass } else { Verdict::Fail };
        (verdict, digest, score, verdicts)
    }

    /// Runs until `cancel`: every `every`, checkpoints each served lease that is due. Which
    /// leases are due is judged on the watcher's copy of each lease and one read of the chain's
    /// clock per tick, so a keeper serving thousands of leases reads only the due ones again
    /// (and the tick can be short: it bounds the checkpoint lag).
    pub async fn run(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        super::every(every, cancel, || async {
            let now = match self.client.chain_time().await {
                Ok(t) => t,
                Err(e) => {
                    warn!(error = %e, "chain clock not read; checkpoints wait for the next tick");
                    return;
                }
            };
            for lease in self.dir.served_leases() {
                let known = self.dir.lease_state(&lease);
                if let Some(l) = &known
                    && l.last_verdict == Verdict::Fail
                {
                    self.resume_slash(&lease, l.last_sequence).await;
                }
                if known.is_some_and(|l| due(&l, now).is_none()) {
                    continue;
                }
                if let Err(e) = self.checkpoint(&lease).await {
                    warn!(lease = %lease, error = %e, "checkpoint not posted; retrying next tick");
                }
            }
        })
        .await;
    }
}

/// The end of the period to post at chain time `now`, if one is due: `checkpoint_interval`
/// after `paid_until`, or the end of the escrow or a pending resize's `resize_at` if that comes
/// first (and has passed): the program settles no further until the resize applies.
pub fn due(lease: &Lease, now: i64) -> Option<i64> {
    let mut limit = lease.funded_until().ok()?;
    if lease.resize_pending() {
        limit = limit.min(lease.resize_at);
    }
    let interval_end = lease
        .paid_until
        .saturating_add(lease.terms.checkpoint_interval);
    let end = now.min(limit);
    let due = now >= interval_end || (now >= limit && limit > lease.paid_until);
    (due && end > lease.paid_until).then_some(end)
}

/// Whether a failed proof's transcript shows the worker's own fault (see
/// [`gpunet_proof::worker_fault`]); the committee checks it again on the chain's data.
fn own_fault(p: &pb::ProofVerdict) -> bool {
    let Ok(t) = gpunet_proof::Transcript::decode(&p.transcript) else {
        return false;
    };
    let b = &t.challenge.body;
    let expect = gpunet_proof::Expectations {
        keeper: b.keeper,
        worker: b.worker,
        epoch: b.epoch,
        nonce: None,
        timing: gpunet_proof::TimingPolicy::default(),
    };
    gpunet_proof::worker_fault(&t, &expect).is_ok()
}

/// The digest posted for a set of proofs (sorted by worker): [`gpunet_proof::checkpoint_digest`]
/// over their transcript digests (a proof without one counts as zero).
pub fn combined_digest(verdicts: &[pb::ProofVerdict]) -> [u8; 32] {
    let digests: Vec<[u8; 32]> = verdicts
        .iter()
        .map(|v| v.digest.as_ref().try_into().unwrap_or([0; 32]))
        .collect();
    gpunet_proof::checkpoint_digest(&digests)
}

#[cfg(test)]
mod tests {
    use anchor_lang::{AnchorDeserialize, Space};

    use super::*;

    /// 2 GPUs at 10 per GPU-second from t=1,000, 12,000 deposited: funded until 1,600;
    /// checkpoints every 300 s.
    fn lease(paid_until: i64) -> Lease {
        let mut l = Lease::deserialize(&mut &vec![0u8; Lease::INIT_SPACE][..]).unwrap();
        l.gpus = 2;
        l.price_per_gpu_second = 10;
        l.funded = 12_000;
        l.start = 1_000;
        l.paid_until = paid_until;
        l.terms.checkpoint_interval = 300;
        l
    }

    #[test]
    fn a_period_is_due_after_the_interval_or_at_the_end_of_the_escrow() {
        assert_eq!(due(&lease(1_000), 1_299), None);
        assert_eq!(due(&lease(1_000), 1_300), Some(1_300));
        assert_eq!(due(&lease(1_300), 1_599), None);
        // The escrow ends before the next interval: the rest is due once it has passed.
        assert_eq!(due(&lease(1_300), 1_600), Some(1_600));
        assert_eq!(due(&lease(1_000), 9_999), Some(1_600));
        assert_eq!(due(&lease(1_600), 9_999), None);
    }

    #[test]
    fn a_pending_resize_ends_the_period_at_its_request() {
        let mut l = lease(1_000);
        l.pending_gpus = 4;
        l.resize_at = 1_120;
        // Not before the request has passed; then up to it and no further.
        assert_eq!(due(&l, 1_119), None);
        assert_eq!(due(&l, 1_120), Some(1_120));
        assert_eq!(due(&l, 1_500), Some(1_120));
        l.paid_until = 1_120;
        assert_eq!(due(&l, 9_999), None);
    }

    #[test]
    fn the_digest_covers_every_worker() {
        let v = |worker: &str, d: u8| pb::ProofVerdict {
            worker_id: worker.into(),
            digest: vec![d; 32].into(),
            ..Default::default()
        };
        assert_eq!(combined_digest(&[]), [0; 32]);
        assert_eq!(combined_digest(&[v("a", 1)]), [1; 32]);
        let two = combined_digest(&[v("a", 1), v("b", 2)]);
        assert_ne!(two, [1; 32]);
        assert_ne!(two, combined_digest(&[v("a", 1), v("b", 3)]));
    }
}
