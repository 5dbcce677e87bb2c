//! Auditing a lease's payouts, by anyone: every checkpoint the chain recorded (its
//! `CheckpointPosted` event: which keeper posted it, the period, the digest, the verdict)
//! against the transcript that keeper serves (`GetTranscript`). Each worker's proof is
//! re-verified from its transcript (`gpunet_proof::verify`, as an auditing keeper: the
//! challenge must be signed by the posting keeper's wallet, and anchored at a slot after the
//! lease's previous checkpoint landed and before this one did, in that slot's epoch), the digest is recomputed and compared with the
//! chain's, and the verdict must follow from the proofs (`Pass` only if every proof verifies).

use std::collections::{BTreeMap, HashMap};

use gpunet::events::CheckpointPosted;
use gpunet::state::{Keeper, Verdict};
use gpunet_proof::{Expectations, TimingPolicy, Transcript, checkpoint_digest, verify_bytes};
use solana_rpc_client::rpc_client::GetConfirmedSignaturesForAddress2Config;
use solana_sdk::epoch_schedule::EpochSchedule;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signature;

use crate::client::{GpunetClient, SdkError};
use crate::events::GpunetEvent;

/// What the audit found for one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum AuditOutcome {
    /// Every proof re-verified, the recomputed digest is the chain's, and the verdict follows.
    Verified {
        /// Workers whose proofs were checked.
        proofs: usize,
    },
    /// The posting keeper could not be asked, or does not serve this checkpoint.
    Unavailable(String),
    /// What the keeper serves does not support what it posted.
    Mismatch(String),
}

/// One checkpoint of a lease and its audit.
#[derive(Clone, Debug)]
pub struct CheckpointAudit {
    /// The chain's record of it.
    pub posted: CheckpointPosted,
    /// The slot of the transaction that posted it.
    pub slot: u64,
    /// What the audit found.
    pub outcome: AuditOutcome,
}

/// What the chain says about a checkpoint besides its event: who had to sign its challenges,
/// and when it was posted.
#[derive(Clone, Debug)]
pub struct Context {
    /// The posting keeper's wallet: the key its challenges must be signed with.
    pub keeper_wallet: [u8; 32],
    /// The slot the checkpoint landed in: every challenge must be anchored before it.
    pub posted_slot: u64,
    /// The slot the lease's previous checkpoint landed in (0 for the first): every challenge
    /// must be anchored after it, so one period's proofs cannot be replayed for the next.
    pub previous_slot: u64,
    /// The chain's epoch schedule: a challenge's epoch must be its slot's.
    pub schedule: EpochSchedule,
}

/// Every gpunet event of the transactions that touched `lease` (its open, draw, top-ups,
/// checkpoints, slashes, reassignments, close) with each transaction's slot, oldest first. It
/// reads the transaction history of the address, so it works after the account is closed.
pub async fn lease_events(
    client: &GpunetClient,
    lease: &Pubkey,
) -> Result<Vec<(GpunetEvent, u64)>, SdkError> {
    let mut before: Option<Signature> = None;
    let mut found: Vec<(GpunetEvent, u64)> = Vec::new();
    loop {
        let page = client
            .rpc()
            .get_signatures_for_address_with_config(
                lease,
                GetConfirmedSignaturesForAddress2Config {
                    before,
                    until: None,
                    limit: Some(1000),
                    commitment: Some(client.rpc().commitment()),
                },
            )
            .await?;
        let n = page.len();
        // Newest first in each page: reversed below.
        for s in &page {
            if s.err.is_some() {
                continue;
            }
            let Ok(sig) = s.signature.parse::<Signature>() else {
                continue;
            };
            for e in client.events(&sig).await?.into_iter().rev() {
                found.push((e, s.slot));
            }
        }
        before = page.last().and_then(|s| s.signature.parse().ok());
        if n < 1000 || before.is_none() {
            break;
        }
    }
    found.reverse();
    Ok(found)
}

/// Every `CheckpointPosted` event of `lease` with the slot of its transaction, by sequence,
/// read from the transactions that touched the lease account.
pub async fn checkpoints_posted(
    client: &GpunetClient,
    lease: &Pubkey,
) -> Result<Vec<(CheckpointPosted, u64)>, SdkError> {
    let mut found: BTreeMap<u64, (CheckpointPosted, u64)> = BTreeMap::new();
    for (e, slot) in lease_events(client, lease).await? {
        if let GpunetEvent::CheckpointPosted(c) = e
            && c.lease == *lease
        {
            found.insert(c.sequence, (c, slot));
        }
    }
    Ok(found.into_values().collect())
}

/// Audits every checkpoint of `lease` (see the module docs). Per-checkpoint problems are
/// outcomes, not errors; an error means the chain itself could not be read.
pub async fn audit_lease(
    client: &GpunetClient,
    lease: &Pubkey,
) -> Result<Vec<CheckpointAudit>, SdkError> {
    let posted = checkpoints_posted(client, lease).await?;
    let schedule = client.rpc().get_epoch_schedule().await?;
    let mut keepers: HashMap<Pubkey, Option<Keeper>> = HashMap::new();
    let mut out = Vec::with_capacity(posted.len());
    let mut previous_slot = 0;
    for (p, slot) in posted {
        if let std::collections::hash_map::Entry::Vacant(v) = keepers.entry(p.keeper) {
            v.insert(keeper_account(client, &p.keeper).await?);
        }
        let slots = (previous_slot, slot);
        previous_slot = slot;
        let outcome = audit_with(&p, slots, keepers[&p.keeper].as_ref(), &schedule, lease).await;
        out.push(CheckpointAudit {
            posted: p,
            slot,
            outcome,
        });
    }
    Ok(out)
}

/// Audits checkpoint `sequence` of `lease`, fetching its transcript from the keeper that
/// posted it; `None` if the chain records no such checkpoint.
pub async fn audit_checkpoint(
    client: &GpunetClient,
    lease: &Pubkey,
    sequence: u64,
) -> Result<Option<CheckpointAudit>, SdkError> {
    let posted = checkpoints_posted(client, lease).await?;
    audit_posted(client, lease, &posted, sequence).await
}

/// [`audit_checkpoint`] over the list [`checkpoints_posted`] already returned (one read of
/// the lease's history for many audits).
pub async fn audit_posted(
    client: &GpunetClient,
    lease: &Pubkey,
    posted: &[(CheckpointPosted, u64)],
    sequence: u64,
) -> Result<Option<CheckpointAudit>, SdkError> {
    let Some(i) = posted.iter().position(|(p, _)| p.sequence == sequence) else {
        return Ok(None);
    };
    let previous_slot = i.checked_sub(1).map_or(0, |j| posted[j].1);
    let (p, slot) = posted[i].clone();
    let schedule = client.rpc().get_epoch_schedule().await?;
    let keeper = keeper_account(client, &p.keeper).await?;
    let outcome = audit_with(&p, (previous_slot, slot), keeper.as_ref(), &schedule, lease).await;
    Ok(Some(CheckpointAudit {
        posted: p,
        slot,
        outcome,
    }))
}

async fn keeper_account(client: &GpunetClient, key: &Pubkey) -> Result<Option<Keeper>, SdkError> {
    match client.fetch::<Keeper>("keeper", key).await {
        Ok(k) => Ok(Some(k)),
        Err(SdkError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn audit_with(
    p: &CheckpointPosted,
    (previous_slot, slot): (u64, u64),
    keeper: Option<&Keeper>,
    schedule: &EpochSchedule,
    lease: &Pubkey,
) -> AuditOutcome {
    let Some(k) = keeper else {
        return AuditOutcome::Unavailable(format!(
            "keeper account {} is closed: nobody serves its transcripts",
            p.keeper
        ));
    };
    let ctx = Context {
        keeper_wallet: k.authority.to_bytes(),
        posted_slot: slot,
        previous_slot,
        schedule: schedule.clone(),
    };
    audit_one(p, k, &ctx, lease).await
}

async fn audit_one(
    p: &CheckpointPosted,
    keeper: &Keeper,
    ctx: &Context,
    lease: &Pubkey,
) -> AuditOutcome {
    let served = match gpunet_task_client::transcript(
        &keeper.endpoint,
        &lease.to_string(),
        p.sequence,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            return AuditOutcome::Unavailable(format!(
                "keeper {} at {}: {e}",
                p.keeper, keeper.endpoint
            ));
        }
    };
    check(p, ctx, &served)
}

/// Checks a served transcript against the chain's record of the checkpoint.
pub fn check(
    p: &CheckpointPosted,
    ctx: &Context,
    served: &gpunet_task_client::pb::CheckpointTranscript,
) -> AuditOutcome {
    let mismatch = |what: String| AuditOutcome::Mismatch(what);
    if served.sequence != p.sequence
        || served.period_start != p.period_start
        || served.period_end != p.period_end
    {
        return mismatch(format!(
            "served checkpoint {} ({}..{}) is not the posted one ({}..{})",
            served.sequence, served.period_start, served.period_end, p.period_start, p.period_end
        ));
    }
    if served.pass != (p.verdict == Verdict::Pass) {
        return mismatch("the served verdict is not the posted one".into());
    }
    let mut digests = Vec::with_capacity(served.proofs.len());
    let mut all_verified = !served.proofs.is_empty();
    for proof in &served.proofs {
        let Some(worker) = bs58::decode(&proof.worker_id)
            .into_vec()
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
        else {
            return mismatch(format!("worker id {:?} is not a key", proof.worker_id));
        };
        // The challenge must be anchored on the chain before the checkpoint landed, in its
        // slot's epoch; the epoch it names is then the one verified.
        let epoch = match Transcript::decode(&proof.transcript) {
            Ok(t) => {
                let b = &t.challenge.body;
                if b.slot > ctx.posted_slot || ctx.schedule.get_epoch(b.slot) != b.epoch {
                    return mismatch(format!(
                        "worker {}: challenge anchored at slot {} epoch {}, not on the chain \
                         before the checkpoint (slot {})",
                        proof.worker_id, b.slot, b.epoch, ctx.posted_slot
                    ));
                }
                if ctx.previous_slot > 0 && b.slot <= ctx.previous_slot {
                    return mismatch(format!(
                        "worker {}: challenge anchored at slot {}, before the previous \
                         checkpoint landed (slot {}): a proof replayed from an earlier period",
                        proof.worker_id, b.slot, ctx.previous_slot
                    ));
                }
                b.epoch
            }
            Err(_) => 0,
        };
        let expect = Expectations {
            keeper: ctx.keeper_wallet,
            worker,
            epoch,
            nonce: None,
            timing: TimingPolicy::default(),
        };
        let digest: [u8; 32] = proof.digest.as_ref().try_into().unwrap_or([0; 32]);
        if proof.transcript.is_empty() {
            // A proof that never reached its opening (a timeout, a dead worker): no transcript
            // to check, and it can only have failed.
            if proof.ok {
                return mismatch(format!(
                    "worker {}: ok without a transcript",
                    proof.worker_id
                ));
            }
            all_verified = false;
            digests.push(digest);
            continue;
        }
        match verify_bytes(&proof.transcript, &expect) {
            Ok(report) => {
                if report.digest != digest {
                    return mismatch(format!(
                        "worker {}: the transcript's digest is not the one served",
                        proof.worker_id
                    ));
                }
            }
            Err(r) => {
                if proof.ok {
                    return mismatch(format!(
                        "worker {}: served as passed, but it does not verify: {r}",
                        proof.worker_id
                    ));
                }
                all_verified = false;
            }
        }
        digests.push(digest);
    }
    let recomputed = checkpoint_digest(&digests);
    if recomputed != p.proof_digest {
        return mismatch("the digest recomputed from the transcripts is not the chain's".into());
    }
    match (p.verdict, all_verified) {
        (Verdict::Pass, true) | (Verdict::Fail, false) => AuditOutcome::Verified {
            proofs: served.proofs.len(),
        },
        (Verdict::Pass, false) => mismatch("posted Pass, but not every proof verifies".into()),
        (Verdict::Fail, true) => mismatch("posted Fail, but every proof verifies".into()),
        (Verdict::None, _) => mismatch("posted with no verdict".into()),
    }
}
