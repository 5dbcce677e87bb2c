//! What a slash needs to be true, checked by every keeper that signs it — the one that asks
//! and each co-signer, each on its own reading of the chain (nothing the asking keeper says
//! about the chain is taken on trust).
//!
//! - [`provider_fault`]: failed proofs whose failure only the worker can have caused
//!   ([`gpunet_proof::worker_fault`]: its own signed words are wrong), by a worker the lease's
//!   provider lists, challenged by the lease's keeper and anchored at a slot still in the
//!   chain's `SlotHashes` (recent: a stale failure cannot be saved up and replayed).
//! - [`silent_workers`]: workers that owe the lease GPUs ([`gpunet_sdk::plan::owed`]) and
//!   that this signer has not heard from for the lease's grace period
//!   ([`crate::liveness`]), after a failed checkpoint. Unlike the other two, this rests on what
//!   each signer saw itself: a worker alive to any of them is not slashed.
//! - [`keeper_fault`]: a checkpoint whose transcript, fetched from the keeper that posted it,
//!   does not support what it posted ([`gpunet_sdk::audit`]), or that it still withholds
//!   `transcript_window` after the period's end.
//!
//! Each returns a [`Finding`]: the evidence digest the slash instruction carries and, for a
//! provider, how many GPUs it slashes; both are computed from the evidence and the chain
//! alone, so every signer computes the same ones.

use gpunet_proof::{Expectations, TimingPolicy, Transcript, checkpoint_digest, worker_fault};
use gpunet_proto::v1 as pb;
use gpunet_sdk::audit::{AuditOutcome, audit_checkpoint};
use gpunet_sdk::gpunet::state::{Lease, LeaseStatus};
use gpunet_sdk::plan::owed;
use gpunet_sdk::{GpunetClient, Keeper, LeaseFilter, Provider, SdkError, Verdict};
use sha2::{Digest, Sha256};
use solana_sdk::pubkey::Pubkey;

use crate::liveness::{Liveness, Silence};

/// Why a slash's evidence does not hold (or could not be checked).
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(#[from] SdkError),
    /// The evidence does not support the slash.
    #[error("{0}")]
    Refuted(String),
    /// It may, later: a worker has not been silent for long enough yet.
    #[error("not yet: {0}")]
    NotYet(String),
}

/// What a slash's evidence supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The evidence digest the slash instruction carries.
    pub digest: [u8; 32],
    /// GPUs a provider slash takes: the shares of the lease the failed workers were
    /// challenged for (each challenge, signed before its outcome was known, names it), or all
    /// of the lease's GPUs when a failed worker answered for the whole lease. 0 for a keeper.
    pub gpus: u16,
}

fn refuted(why: impl Into<String>) -> EvidenceError {
    EvidenceError::Refuted(why.into())
}

/// Common to both kinds: the lease may be slashed now and `me` sits on its committee.
fn on_committee(lease: &Lease, me: &Pubkey) -> Result<(), EvidenceError> {
    if lease.status == LeaseStatus::Pending {
        return Err(refuted("the lease has no committee yet"));
    }
    if !lease.in_committee(me) {
        return Err(refuted(format!(
            "keeper {me} is not on the lease's committee"
        )));
    }
    Ok(())
}

/// `SlotHashes` entries (slot, hash) from the sysvar account's data.
fn slot_hashes(data: &[u8]) -> Vec<(u64, [u8; 32])> {
    data.get(8..)
        .unwrap_or_default()
        .chunks_exact(40)
        .filter_map(|e| {
            Some((
                u64::from_le_bytes(e[..8].try_into().ok()?),
                e[8..].try_into().ok()?,
            ))
        })
        .collect()
}

/// Checks failed proofs as evidence against `lease`'s provider, for committee member `me`;
/// the finding's digest is `checkpoint_digest` over the transcripts' digests, in order.
pub async fn provider_fault(
    client: &GpunetClient,
    address: &Pubkey,
    me: &Pubkey,
    proofs: &[pb::ProofVerdict],
) -> Result<Finding, EvidenceError> {
    let lease = client.lease(address).await?;
    on_committee(&lease, me)?;
    if lease.status != LeaseStatus::Active {
        return Err(refuted("the lease is not active"));
    }
    if proofs.is_empty() || proofs.len() > usize::from(lease.gpus).max(1) {
        return Err(refuted(format!(
            "{} failed proofs for a {}-GPU lease",
            proofs.len(),
            lease.gpus
        )));
    }
    let provider = client
        .fetch::<Provider>("provider", &lease.provider)
        .await?;
    let keeper = client.fetch::<Keeper>("keeper", &lease.keeper).await?;
    let hashes = slot_hashes(
        &client
            .rpc()
            .get_account(&gpunet_sdk::gpunet::committee::SLOT_HASHES_ID)
            .await
            .map_err(SdkError::from)?
            .data,
    );
    let schedule = client
        .rpc()
        .get_epoch_schedule()
        .await
        .map_err(SdkError::from)?;
    let mut digests = Vec::with_capacity(proofs.len());
    let mut workers = Vec::with_capacity(proofs.len());
    let mut shares: Vec<u16> = Vec::with_capacity(proofs.len());
    for p in proofs {
        let t = Transcript::decode(&p.transcript)
            .map_err(|e| refuted(format!("worker {}: {e}", p.worker_id)))?;
        let b = &t.challenge.body;
        let worker = Pubkey::new_from_array(b.worker);
        if !provider.workers.contains(&worker) {
            return Err(refuted(format!(
                "worker {worker} is not listed by provider {}",
                lease.provider
            )));
        }
        if b.keeper != keeper.authority.to_bytes() {
            return Err(refuted(format!(
                "worker {worker}: challenged by another keeper than the lease's"
            )));
        }
        if !hashes.contains(&(b.slot, b.slot_hash)) || schedule.get_epoch(b.slot) != b.epoch {
            return Err(refuted(format!(
                "worker {worker}: challenge anchored at slot {} (epoch {}), not a recent slot \
                 of this chain",
                b.slot, b.epoch
            )));
        }
        let expect = Expectations {
            keeper: b.keeper,
            worker: b.worker,
            epoch: b.epoch,
            nonce: None,
            timing: TimingPolicy::default(),
        };
        worker_fault(&t, &expect).map_err(|why| refuted(format!("worker {worker}: {why}")))?;
        if workers.contains(&worker) {
            return Err(refuted(format!("worker {worker} counted twice")));
        }
        workers.push(worker);
        shares.push(b.gpus);
        digests.push(t.digest());
    }
    Ok(Finding {
        digest: checkpoint_digest(&digests),
        gpus: slashed_gpus(&shares, lease.gpus)?,
    })
}

/// GPUs a provider slash takes for failed workers challenged for `shares` of a `lease_gpus`
/// lease: their sum, or the whole lease when one answered for all of it (a share of 0: a
/// worker without GPUs serves a lease whole). More than the lease has is not evidence.
fn slashed_gpus(shares: &[u16], lease_gpus: u16) -> Result<u16, EvidenceError> {
    if shares.contains(&0) {
        return Ok(lease_gpus);
    }
    let sum: u32 = shares.iter().map(|&g| u32::from(g)).sum();
    if sum == 0 || sum > u32::from(lease_gpus) {
        return Err(refuted(format!(
            "the failed workers were challenged for {sum} GPUs of a {lease_gpus}-GPU lease"
        )));
    }
    Ok(sum as u16)
}

/// Domain tag of a silent-workers evidence digest.
const SILENT_TAG: &[u8] = b"gpunet-silent-workers-v1";

/// The lease, its provider's listed workers and GPU count, and its provider's leases: what
/// the layout of [`gpunet_sdk::plan`] is computed from.
async fn layout_inputs(
    client: &GpunetClient,
    lease: &Lease,
) -> Result<(Provider, Vec<(Pubkey, Lease)>), EvidenceError> {
    let provider = client
        .fetch::<Provider>("provider", &lease.provider)
        .await?;
    let leases = client.leases(LeaseFilter::Provider(lease.provider)).await?;
    Ok((provider, leases))
}

/// The workers that owe `address`'s lease GPUs and that `liveness` says are silent past the
/// lease's grace period: what the lease's keeper asks its committee to slash for, once a
/// checkpoint failed. `NotYet` while one of them may still become so (all go in one slash:
/// the program takes one per checkpoint); empty when none is silent.
pub async fn find_silent(
    client: &GpunetClient,
    address: &Pubkey,
    liveness: &Liveness,
) -> Result<Vec<Pubkey>, EvidenceError> {
    let lease = client.lease(address).await?;
    let (provider, leases) = layout_inputs(client, &lease).await?;
    let now = client.chain_time().await?;
    let mut silent = Vec::new();
    let mut waiting = Vec::new();
    for w in owed(&provider.workers, provider.gpu.count, &leases, address).keys() {
        match liveness.silence(&w.to_string(), now, lease.terms.grace_period) {
            Silence::Alive => {}
            Silence::NotYet(why) => waiting.push(format!("worker {w}: {why}")),
            Silence::Past { .. } => silent.push(*w),
        }
    }
    if !waiting.is_empty() {
        return Err(EvidenceError::NotYet(waiting.join("; ")));
    }
    silent.sort();
    Ok(silent)
}

/// Checks `workers` (sorted, each once) as silent past the grace period on `address`'s lease,
/// for committee member `me` on its own record `liveness`: the lease is active and its last
/// checkpoint failed; each worker is listed by the lease's provider and owes the lease GPUs;
/// `me` has not heard from it for the grace period. The finding: the GPUs they owe the lease,
/// and SHA-256 over a tag, the lease, its last sequence and the workers.
pub async fn silent_workers(
    client: &GpunetClient,
    address: &Pubkey,
    me: &Pubkey,
    workers: &[Pubkey],
    liveness: &Liveness,
) -> Result<Finding, EvidenceError> {
    let lease = client.lease(address).await?;
    on_committee(&lease, me)?;
    if lease.status != LeaseStatus::Active {
        return Err(refuted("the lease is not active"));
    }
    if lease.last_sequence == 0 || lease.last_verdict != Verdict::Fail {
        return Err(refuted("the lease's last checkpoint did not fail"));
    }
    if workers.is_empty() || workers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(refuted("the workers must be named sorted, each once"));
    }
    let (provider, leases) = layout_inputs(client, &lease).await?;
    let now = client.chain_time().await?;
    let owed_by = owed(&provider.workers, provider.gpu.count, &leases, address);
    let mut gpus: u32 = 0;
    for w in workers {
        if !provider.workers.contains(w) {
            return Err(refuted(format!(
                "worker {w} is not listed by provider {}",
                lease.provider
            )));
        }
        let owed = owed_by.get(w).copied().unwrap_or(0);
        if owed == 0 {
            return Err(refuted(format!("worker {w} owes this lease no GPU")));
        }
        match liveness.silence(&w.to_string(), now, lease.terms.grace_period) {
            Silence::Alive => {
                return Err(refuted(format!(
                    "worker {w} is alive: this keeper heard from it moments ago"
                )));
            }
            Silence::NotYet(why) => {
                return Err(EvidenceError::NotYet(format!("worker {w}: {why}")));
            }
            Silence::Past { .. } => {}
        }
        gpus += u32::from(owed);
    }
    let mut h = Sha256::new();
    h.update(SILENT_TAG);
    h.update(address.as_ref());
    h.update(lease.last_sequence.to_le_bytes());
    for w in workers {
        h.update(w.as_ref());
    }
    Ok(Finding {
        digest: h.finalize().into(),
        gpus: gpus.min(u32::from(lease.gpus)) as u16,
    })
}

/// Domain tag of a keeper-fault evidence digest.
const KEEPER_FAULT_TAG: &[u8] = b"gpunet-keeper-fault-v1";

/// Checks that `accused` posted checkpoint `sequence` of `lease` and that its transcript is
/// false, or withheld `transcript_window` seconds after the period's end (chain clock), for
/// committee member `me`. Returns the evidence digest: SHA-256 over a tag, the lease, the
/// sequence, the digest posted and the finding (0 false, 1 withheld).
pub async fn keeper_fault(
    client: &GpunetClient,
    address: &Pubkey,
    me: &Pubkey,
    accused: &Pubkey,
    sequence: u64,
    transcript_window: i64,
) -> Result<Finding, EvidenceError> {
    let lease = client.lease(address).await?;
    on_committee(&lease, me)?;
    if accused == me || !lease.in_committee(accused) {
        return Err(refuted(format!(
            "keeper {accused} cannot be slashed by {me} on this lease"
        )));
    }
    if sequence <= lease.judged_sequence || sequence > lease.last_sequence {
        return Err(refuted(format!(
            "checkpoint {sequence} is not open to judgement (posted 1..={}, judged up to {})",
            lease.last_sequence, lease.judged_sequence
        )));
    }
    let Some(audit) = audit_checkpoint(client, address, sequence).await? else {
        return Err(refuted(format!(
            "no CheckpointPosted event for sequence {sequence}"
        )));
    };
    let p = audit.posted;
    if p.keeper != *accused {
        return Err(refuted(format!(
            "checkpoint {sequence} was posted by {}, not {accused}",
            p.keeper
        )));
    }
    let finding: u8 = match audit.outcome {
        AuditOutcome::Verified { .. } => {
            return Err(refuted(format!(
                "checkpoint {sequence}'s transcript verifies"
            )));
        }
        AuditOutcome::Mismatch(_) => 0,
        AuditOutcome::Unavailable(why) => {
            let now = client.chain_time().await?;
            if now <= p.period_end.saturating_add(transcript_window) {
                return Err(refuted(format!(
                    "checkpoint {sequence}'s transcript is unavailable ({why}), but the \
                     transcript window has not passed"
                )));
            }
            1
        }
    };
    let mut h = Sha256::new();
    h.update(KEEPER_FAULT_TAG);
    h.update(address.as_ref());
    h.update(sequence.to_le_bytes());
    h.update(p.proof_digest);
    h.update([finding]);
    Ok(Finding {
        digest: h.finalize().into(),
        gpus: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_hashes_parse_the_sysvar_layout() {
        let mut data = 2u64.to_le_bytes().to_vec();
        for (slot, b) in [(9u64, 1u8), (8, 2)] {
            data.extend(slot.to_le_bytes());
            data.extend([b; 32]);
        }
        assert_eq!(slot_hashes(&data), vec![(9, [1; 32]), (8, [2; 32])]);
        assert!(slot_hashes(&[]).is_empty());
    }

    #[test]
    fn slashed_gpus_are_the_failed_shares_or_the_whole_lease() {
        assert_eq!(slashed_gpus(&[2], 4).unwrap(), 2);
        assert_eq!(slashed_gpus(&[1, 2], 4).unwrap(), 3);
        assert_eq!(slashed_gpus(&[2, 2], 4).unwrap(), 4);
        assert_eq!(slashed_gpus(&[0], 4).unwrap(), 4, "a whole-machine worker");
        assert!(slashed_gpus(&[3, 2], 4).is_err(), "more than the lease has");
        assert!(slashed_gpus(&[], 4).is_err());
    }
}
