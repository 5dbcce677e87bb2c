//! Benchmark proofs over the task stream: the keeper challenges one worker of a lease's
//! cluster, times the rounds it streams, asks for an opening, verifies it, and records the
//! verdict as evidence.
//!
//! ```text
//!  Prover::prove                      Core / worker stream                     worker
//!   SignedChallenge::issue (keeper key, bound to the worker)
//!   ProofRoutes::expect(challenge)
//!   submit ProofTask ── hard affinity, all the worker's GPUs, max_retries 0 ──▶ Assignment
//!   ◀── Assigned (Core::start, the instant the assignment goes out): KeeperSession
//!   ◀── ProofCommitMsg (routed by task id + worker) ◀──────────────── RoundCommit_k
//!        KeeperSession::receive_at: a bad commit is refused at once
//!   — all K roots in — OpeningRequest::fresh() ─────── ProofOpen ─────────────▶ open
//!   ◀── ProofOpening ◀─────────────────────────────────────────────── signed Opening
//!   verify(transcript, Expectations::for_issued) → ProofVerdict + Evidence (group commit)
//! ```
//!
//! Every wait is bounded by [`ProofSettings::timeout`]: from submitting to the assignment,
//! from the assignment to the first commit and between commits, and from `ProofOpen` to the
//! opening. A timeout is a verdict like any other, and so is a proof task that fails (worker
//! died, cancelled). `docs/dispatch.md` ("Benchmark proofs over the task stream") has the
//! timing, the evidence and what CPU-only workers get.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use gpunet_proof::{
    ChallengeBody, ChallengeParams, Expectations, GpuClass, KeeperSession, Opening,
    PROTOCOL_VERSION, Rejection, RoundCommit, SignedChallenge, Transcript,
};
use gpunet_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

pub use crate::config::ProofSettings;
use crate::core::Core;
use crate::error::KeeperError;
use crate::proof_routes::ProofEvent;
use crate::store::{Evidence, EvidenceKind};

/// Default matrix side for a CPU-only worker (its challenge carries no throughput claim, so
/// it only has to be large enough to exercise the whole protocol).
pub const CPU_ONLY_DEFAULT_N: u32 = 256;
/// Default rounds for a CPU-only worker.
pub const CPU_ONLY_DEFAULT_ROUNDS: u32 = 8;
/// Largest matrix side a CPU-only worker is asked for (the CPU prover needs `2 n^3` int8
/// operations per round: ~2·10⁹ at 1,024).
pub const CPU_ONLY_MAX_N: u32 = 1024;
/// Tile side of keeper-issued challenges (as `ChallengeParams::default`).
const TILE: u32 = 16;

/// Per-request overrides of a challenge's size.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProveOptions {
    /// Matrix side.
    pub n: Option<u32>,
    /// Rounds.
    pub rounds: Option<u32>,
}

/// The GPU class a worker's challenge claims: from the model it registered, or
/// [`GpuClass::CpuReference`] (no throughput claim: the timing check passes at any speed)
/// for a CPU-only worker (declared GPUs) and for models without a row in the table.
pub fn gpu_class(model: &str, cpu_only: bool) -> GpuClass {
    if cpu_only {
        return GpuClass::CpuReference;
    }
    let m = model.to_ascii_uppercase();
    if m.contains("H200") {
        GpuClass::H200
    } else if m.contains("H100") {
        GpuClass::H100
    } else if m.contains("A100") {
        GpuClass::A100
    } else if m.contains("L40S") {
        GpuClass::L40s
    } else if m.contains("4090") {
        GpuClass::Rtx4090
    } else {
        GpuClass::CpuReference
    }
}

/// The parameters of one challenge: the settings (GPU workers) or the small CPU defaults
/// (CPU-only workers), with the request's overrides; one tile opened in each of up to 32
/// rounds (`s = 1`, as `ChallengeParams::default`).
pub fn challenge_params(
    settings: &ProofSettings,
    opts: ProveOptions,
    cpu_only: bool,
) -> Result<ChallengeParams, KeeperError> {
    let (dn, dk) = if cpu_only {
        (
            settings.n.min(CPU_ONLY_DEFAULT_N),
            settings.rounds.min(CPU_ONLY_DEFAULT_ROUNDS),
        )
    } else {
        (settings.n, settings.rounds)
    };
    let n = opts.n.unwrap_or(dn);
    let rounds = opts.rounds.unwrap_or(dk);
    if cpu_only && n > CPU_ONLY_MAX_N {
        return Err(KeeperError::Invalid(format!(
            "n = {n}: a CPU-only worker is asked for at most n = {CPU_ONLY_MAX_N}"
        )));
    }
    let p = ChallengeParams {
        n,
        inner: n,
        rounds,
        tile: TILE.min(n),
        samples_per_round: 1,
        rounds_sampled: rounds.clamp(1, ChallengeParams::default().rounds_sampled),
    };
    p.validate()
        .map_err(|e| KeeperError::Invalid(e.to_string()))?;
    Ok(p)
}

/// The `Rejection` variant's name (what verdicts and evidence carry).
pub fn rejection_kind(r: &Rejection) -> &'static str {
    match r {
        Rejection::Decode(_) => "Decode",
        Rejection::InvalidParams(_) => "InvalidParams",
        Rejection::UnsupportedVersion(_) => "UnsupportedVersion",
        Rejection::BadKeeperSignature => "BadKeeperSignature",
        Rejection::WrongKeeper => "WrongKeeper",
        Rejection::WrongWorker => "WrongWorker",
        Rejection::WrongEpoch { .. } => "WrongEpoch",
        Rejection::NonceMismatch => "NonceMismatch",
        Rejection::RoundCount { .. } => "RoundCount",
        Rejection::RoundOutOfOrder { .. } => "RoundOutOfOrder",
        Rejection::SeedMismatch { .. } => "SeedMismatch",
        Rejection::RepeatedRoot { .. } => "RepeatedRoot",
        Rejection::TimestampsNotMonotonic { .. } => "TimestampsNotMonotonic",
        Rejection::BadWorkerSignature => "BadWorkerSignature",
        Rejection::OpeningCount { .. } => "OpeningCount",
        Rejection::UnrequestedTile { .. } => "UnrequestedTile",
        Rejection::TileShape { .. } => "TileShape",
        Rejection::MerklePathInvalid { .. } => "MerklePathInvalid",
        Rejection::TileMismatch { .. } => "TileMismatch",
        Rejection::TooSlow { .. } => "TooSlow",
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- prover

/// Runs challenges against workers and verifies them (one job: the keeper's side of the
/// benchmark proof).
pub struct Prover {
    core: Arc<Core>,
    key: SigningKey,
    settings: ProofSettings,
    cancel: CancellationToken,
    anchor: parking_lot::RwLock<Option<Arc<dyn ChallengeAnchor>>>,
}

/// A recent point of the chain a challenge is bound to: its slot, that slot's hash and the
/// epoch. A worker cannot have started on a challenge before that slot existed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anchor {
    /// A recent slot.
    pub slot: u64,
    /// Its bank hash, from the SlotHashes sysvar.
    pub slot_hash: [u8; 32],
    /// The epoch of `slot`.
    pub epoch: u64,
}

/// Where challenges get their [`Anchor`] (the chain side provides one; without it, or
/// while it has none, the keeper's clock and fresh randomness stand in, epoch 0).
pub trait ChallengeAnchor: Send + Sync + 'static {
    /// The most recent anchor, if any.
    fn anchor(&self) -> Option<Anchor>;
}

/// How one proof ended, before it becomes a verdict.
struct Outcome {
    verdict: pb::ProofOutcome,
    rejection: String,
    reason: String,
    transcript: Option<Transcript>,
    required_tops: f64,
    tiles_checked: u32,
}

impl Outcome {
    fn rejected(r: &Rejection, transcript: Option<Transcript>) -> Self {
        Self {
            verdict: pb::ProofOutcome::Rejected,
            rejection: rejection_kind(r).to_string(),
            reason: r.to_string(),
            transcript,
            required_tops: 0.0,
            tiles_checked: 0,
        }
    }

    fn other(verdict: pb::ProofOutcome, rejection: &str, reason: String) -> Self {
        Self {
            verdict,
            rejection: rejection.to_string(),
            reason,
            transcript: None,
            required_tops: 0.0,
            tiles_checked: 0,
        }
    }
}

/// The keeper's view of an assigned proof task.
struct Running {
    session: KeeperSession,
    assigned_at: Instant,
    attempt: u32,
    tx: Option<mpsc::UnboundedSender<pb::KeeperMessage>>,
    last_us: u64,
}

/// How the exchange with the worker ended (see `Prover::exchange`).
struct Exchange {
    outcome: Outcome,
    stage: pb::ProofStage,
    rounds_received: u32,
    last_us: u64,
}

/// The proof task for a challenge: hard affinity to the worker, no retries, and all the
/// worker's GPUs (on a CPU-only worker all its CPUs: the CPU prover uses every core), so the
/// proof never shares the machine with the user's tasks.
fn proof_task(worker: &Arc<str>, w: &pb::WorkerInfo, challenge: Bytes) -> pb::TaskSpec {
    pb::TaskSpec {
        name: format!("benchmark proof of {worker}"),
        executor: Some(pb::task_spec::Executor::Proof(pb::ProofTask { challenge })),
        resources: Some(pb::Resources {
            milli_cpus: if w.cpu_only { w.milli_cpus } else { 1000 },
            gpus: w.gpus.len() as u32,
            memory_bytes: 0,
            gpu_model: String::new(),
        }),
        strategy: Some(pb::SchedulingStrategy {
            kind: Some(pb::scheduling_strategy::Kind::NodeAffinity(
                pb::NodeAffinity {
                    worker_id: worker.to_string(),
                    soft: false,
                },
            )),
        }),
        max_retries: Some(0),
        ..Default::default()
    }
}

impl Prover {
    /// A prover that signs challenges with the keeper's key.
    pub fn new(
        core: Arc<Core>,
        key: SigningKey,
        settings: ProofSettings,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            core,
            key,
            settings,
            cancel,
            anchor: parking_lot::RwLock::new(None),
        }
    }

    /// Binds every later challenge to the chain points `anchor` gives.
    pub fn set_anchor(&self, anchor: Arc<dyn ChallengeAnchor>) {
        *self.anchor.write() = Some(anchor);
    }

    /// Challenges `worker` (a member of `lease`'s cluster), verifies its proof, records the
    /// verdict as evidence (durably, before returning) and returns it. Errors are for requests
    /// that never became a proof (unknown lease, a worker outside the cluster, bad sizes) and
    /// for a keeper shutting down.
    pub async fn prove(
        &self,
        lease: &Arc<str>,
        worker: &str,
        opts: ProveOptions,
    ) -> Result<pb::ProofVerdict, KeeperError> {
        let span = info_span!("proof", lease = %lease, worker = %worker);
        self.prove_inner(lease, worker, opts).instrument(span).await
    }

    async fn prove_inner(
        &self,
        lease: &Arc<str>,
        worker: &str,
        opts: ProveOptions,
    ) -> Result<pb::ProofVerdict, KeeperError> {
        let started = Instant::now();
        let cluster = self.core.cluster(lease)?;
        let Some(w) = cluster.workers.iter().find(|w| w.worker_id == worker) else {
            return Err(KeeperError::Denied(format!(
                "worker {worker} is not in the cluster of lease {lease}"
            )));
        };
        let (challenge, class, params) = self.issue_challenge(w, worker, opts)?;
        let encoded: Bytes = challenge.encode().into();
        let worker: Arc<str> = worker.into();
        let (_guard, mut events) = self.core.proofs.expect(encoded.clone(), worker.clone());
        let spec = proof_task(&worker, w, encoded);
        let (ids, ack) = self.core.submit_nowait(lease, vec![spec], false)?;
        if let Some(ack) = ack {
            Core::durable(ack).await?;
        }
        let task_id = ids[0];
        info!(task = task_id, n = params.n, rounds = params.rounds, class = ?class, "proof challenge issued");

        let Exchange {
            outcome,
            stage,
            rounds_received,
            last_us,
        } = self
            .exchange(lease, task_id, &challenge, params, &mut events)
            .await?;
        if outcome.verdict != pb::ProofOutcome::Ok {
            // Stop the worker's side (harmless if the task is already over).
            let _ = self.core.cancel(lease, &[task_id]);
        }

        let ops = params.ops_per_round();
        let measured_tops = match &outcome.transcript {
            Some(t) => gpunet_proof::verify::measured_tops(t),
            None if last_us > 0 => {
                ops * f64::from(rounds_received) / (last_us as f64 * 1e-6) / 1e12
            }
            None => 0.0,
        };
        let (digest, transcript) = match &outcome.transcript {
            Some(t) => (Bytes::copy_from_slice(&t.digest()), Bytes::from(t.encode())),
            None => (Bytes::new(), Bytes::new()),
        };
        let required_tops = if outcome.required_tops > 0.0 {
            outcome.required_tops
        } else {
            let slack = gpunet_proof::TimingPolicy::default().slack_percent.min(100);
            class.expected_tops() * f64::from(100 - slack) / 100.0
        };
        let verdict = pb::ProofVerdict {
            verdict: outcome.verdict as i32,
            stage: stage as i32,
            ok: outcome.verdict == pb::ProofOutcome::Ok,
            rejection: outcome.rejection.clone(),
            reason: outcome.reason.clone(),
            digest: digest.clone(),
            transcript: transcript.clone(),
            measured_tops,
            required_tops,
            gpu_class: format!("{class:?}"),
            worker_id: worker.to_string(),
            lease_id: lease.to_string(),
            task_id,
            n: params.n,
            rounds: params.rounds,
            rounds_received,
            tiles_checked: outcome.tiles_checked,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        if verdict.ok {
            info!(task = task_id, tops = measured_tops, "proof verified");
        } else {
            warn!(task = task_id, verdict = ?verdict.verdict(), stage = ?verdict.stage(), rejection = %verdict.rejection, reason = %verdict.reason, "proof not verified");
        }
        let ack = self.core.record_evidence(Evidence {
            worker: worker.to_string(),
            provider: cluster.provider.clone(),
            lease: lease.to_string(),
            reason: if verdict.ok {
                "benchmark proof verified".into()
            } else {
                verdict.reason.clone()
            },
            at_unix_ms: now_ms(),
            tasks: vec![task_id],
            kind: EvidenceKind::Proof as i32,
            verdict: verdict.verdict,
            stage: verdict.stage,
            rejection: verdict.rejection.clone(),
            digest,
            transcript,
            measured_tops,
        });
        Core::durable(ack).await?;
        Ok(verdict)
    }

    /// A fresh challenge for `worker` (`w` in the cluster's view): its class from the model it
    /// registered, the parameters for its kind, signed with the keeper's key.
    fn issue_challenge(
        &self,
        w: &pb::WorkerInfo,
        worker: &str,
        opts: ProveOptions,
    ) -> Result<(SignedChallenge, GpuClass, ChallengeParams), KeeperError> {
        let worker_key: [u8; 32] = bs58::decode(worker)
            .into_vec()
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| KeeperError::Invalid(format!("worker id {worker} is not a key")))?;
        let model = w.gpus.first().map(|g| g.model.as_str()).unwrap_or("");
        let class = gpu_class(model, w.cpu_only);
        let params = challenge_params(&self.settings, opts, w.cpu_only)?;
        let anchor = self.anchor.read().as_ref().and_then(|a| a.anchor());
        let anchor = match anchor {
            Some(a) => a,
            // Offline: the keeper's clock and fresh randomness stand in for a recent slot and
            // its hash; epoch 0.
            None => Anchor {
                slot: now_ms(),
                slot_hash: crate::auth::random_bytes::<32>()?,
                epoch: 0,
            },
        };
        let challenge = SignedChallenge::issue(
            &self.key,
            ChallengeBody {
                version: PROTOCOL_VERSION,
                slot: anchor.slot,
                slot_hash: anchor.slot_hash,
                epoch: anchor.epoch,
                keeper: self.key.verifying_key().to_bytes(),
                worker: worker_key,
                gpu_class: class,
                gpus: u16::try_from(w.gpus.len()).unwrap_or(u16::MAX),
                params,
                keeper_entropy: crate::auth::random_bytes::<32>()?,
            },
        )
        .map_err(|e| KeeperError::Proof(e.to_string()))?;
        Ok((challenge, class, params))
    }

    /// The exchange with the worker, from the submitted proof task to an outcome: wait for
    /// the assignment, take the round commits as they stream in, ask for an opening once all
    /// are in, verify it. Every wait is bounded by the settings' timeout.
    async fn exchange(
        &self,
        lease: &Arc<str>,
        task_id: u64,
        challenge: &SignedChallenge,
        params: ChallengeParams,
        events: &mut mpsc::UnboundedReceiver<ProofEvent>,
    ) -> Result<Exchange, KeeperError> {
        let timeout = self.settings.timeout;
        let mut deadline = tokio::time::Instant::now() + timeout;
        let mut stage = pb::ProofStage::Assignment;
        let mut running: Option<Running> = None;
        let mut rounds_received = 0u32;
        let mut last_us = 0u64;
        let core = &self.core;
        let ended = async {
            loop {
                let st = core.wait(lease, task_id, Duration::from_secs(3600)).await?;
                if st.state == pb::TaskState::Finished as i32
                    || st.state == pb::TaskState::Failed as i32
                    || st.state == pb::TaskState::Cancelled as i32
                {
                    return Ok::<_, KeeperError>(st);
                }
            }
        };
        tokio::pin!(ended);
        let outcome = loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(KeeperError::ShuttingDown),
                ev = events.recv() => match ev {
                    None => break Outcome::other(pb::ProofOutcome::Failed, "internal", "proof routes dropped".into()),
                    Some(ProofEvent::Assigned { task_id: t, attempt, tx, at }) => {
                        if t != task_id || running.is_some() {
                            continue;
                        }
                        running = Some(Running {
                            session: KeeperSession::new(challenge.clone()),
                            assigned_at: at,
                            attempt,
                            tx,
                            last_us: 0,
                        });
                        stage = pb::ProofStage::Commits;
                        deadline = tokio::time::Instant::now() + timeout;
                    }
                    Some(ProofEvent::Commit { commit, at }) => {
                        let Some(r) = running.as_mut() else { continue };
                        if stage != pb::ProofStage::Commits {
                            break Outcome::rejected(
                                &Rejection::RoundCount { expected: params.rounds, got: rounds_received + 1 },
                                None,
                            );
                        }
                        let c = match RoundCommit::decode(&commit) {
                            Ok(c) => c,
                            Err(e) => break Outcome::rejected(&Rejection::Decode(e.to_string()), None),
                        };
                        let us = u64::try_from(at.saturating_duration_since(r.assigned_at).as_micros())
                            .unwrap_or(u64::MAX)
                            .max(r.last_us);
                        if let Err(rej) = r.session.receive_at(c, us) {
                            break Outcome::rejected(&rej, None);
                        }
                        r.last_us = us;
                        last_us = us;
                        rounds_received += 1;
                        deadline = tokio::time::Instant::now() + timeout;
                        if r.session.is_complete() {
                            // Randomness the worker could not know: drawn only now.
                            let req = match r.session.request_opening() {
                                Ok(q) => q,
                                Err(e) => break Outcome::other(pb::ProofOutcome::Failed, "internal", e.to_string()),
                            };
                            let sent = r.tx.as_ref().is_some_and(|tx| {
                                tx.send(pb::KeeperMessage {
                                    msg: Some(pb::keeper_message::Msg::ProofOpen(pb::ProofOpen {
                                        task_id,
                                        attempt: r.attempt,
                                        request: req.encode().into(),
                                    })),
                                })
                                .is_ok()
                            });
                            if !sent {
                                break Outcome::other(pb::ProofOutcome::Failed, "WORKER_DIED", "the worker's stream is gone".into());
                            }
                            stage = pb::ProofStage::Opening;
                        }
                    }
                    Some(ProofEvent::Opening { opening }) => {
                        if stage != pb::ProofStage::Opening {
                            // Nothing was requested yet: it cannot be an answer.
                            warn!(task = task_id, "unrequested opening ignored");
                            continue;
                        }
                        let Some(r) = running.take() else { continue };
                        let opening = match Opening::decode(&opening) {
                            Ok(o) => o,
                            Err(e) => break Outcome::rejected(&Rejection::Decode(e.to_string()), None),
                        };
                        let t = match r.session.finish(opening) {
                            Ok(t) => t,
                            Err(e) => break Outcome::other(pb::ProofOutcome::Failed, "internal", e.to_string()),
                        };
                        break match gpunet_proof::verify(&t, &Expectations::for_issued(challenge)) {
                            Ok(rep) => Outcome {
                                verdict: pb::ProofOutcome::Ok,
                                rejection: String::new(),
                                reason: String::new(),
                                transcript: Some(t),
                                required_tops: rep.required_tops,
                                tiles_checked: rep.tiles_checked,
                            },
                            Err(rej) => Outcome::rejected(&rej, Some(t)),
                        };
                    }
                },
                st = &mut ended => break match st {
                    Ok(st) => Outcome::other(
                        pb::ProofOutcome::Failed,
                        pb::ErrorKind::try_from(st.error_kind)
                            .unwrap_or(pb::ErrorKind::None)
                            .as_str_name()
                            .trim_start_matches("ERROR_KIND_"),
                        if st.error.is_empty() {
                            format!(
                                "the proof task ended ({}) before the opening",
                                pb::TaskState::try_from(st.state)
                                    .unwrap_or(pb::TaskState::Unspecified)
                                    .as_str_name()
                            )
                        } else {
                            format!("the proof task ended before the opening: {}", st.error)
                        },
                    ),
                    Err(e) => Outcome::other(pb::ProofOutcome::Failed, "internal", e.to_string()),
                },
                _ = tokio::time::sleep_until(deadline) => break Outcome::other(
                    pb::ProofOutcome::Timeout,
                    "",
                    match stage {
                        pb::ProofStage::Assignment | pb::ProofStage::Unspecified => format!("the proof task was not assigned within {timeout:?}"),
                        pb::ProofStage::Commits => format!(
                            "round {} of {} did not arrive within {timeout:?}",
                            rounds_received + 1,
                            params.rounds
                        ),
                        _ => format!("no opening within {timeout:?} of the request"),
                    },
                ),
            }
        };
        Ok(Exchange {
            outcome,
            stage,
            rounds_received,
            last_us,
        })
    }

    /// Proves every worker of every formed cluster each `every`, one proof per worker at a
    /// time (a worker with a proof under way is skipped), until the keeper shuts down.
    pub async fn run_periodic(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: let workers join first.
        tick.tick().await;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut round = JoinSet::new();
            for lease in self.core.cluster_leases() {
                let Ok(c) = self.core.cluster(&lease) else {
                    continue;
                };
                for w in c.workers {
                    if w.draining || self.core.proofs.in_flight(&w.worker_id) {
                        continue;
                    }
                    let me = self.clone();
                    let lease = lease.clone();
                    round.spawn(async move {
                        match me.prove(&lease, &w.worker_id, ProveOptions::default()).await {
                            Ok(v) => info!(
                                lease = %lease, worker = %w.worker_id, verdict = ?v.verdict(),
                                rejection = %v.rejection, tops = v.measured_tops,
                                "periodic proof"
                            ),
                            Err(e) => warn!(lease = %lease, worker = %w.worker_id, error = %e, "periodic proof not run"),
                        }
                    });
                }
            }
            while round.join_next().await.is_some() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_registered_model() {
        assert_eq!(gpu_class("NVIDIA H100 80GB HBM3", false), GpuClass::H100);
        assert_eq!(gpu_class("NVIDIA H200", false), GpuClass::H200);
        assert_eq!(gpu_class("NVIDIA A100-SXM4-80GB", false), GpuClass::A100);
        assert_eq!(gpu_class("NVIDIA L40S", false), GpuClass::L40s);
        assert_eq!(
            gpu_class("NVIDIA GeForce RTX 4090", false),
            GpuClass::Rtx4090
        );
        assert_eq!(gpu_class("Tesla T4", false), GpuClass::CpuReference);
        // Declared GPUs prove on the CPU: no throughput claim, whatever the name says.
        assert_eq!(gpu_class("H100-sim", true), GpuClass::CpuReference);
    }

    #[test]
    fn params_are_small_for_cpu_workers_and_validated() {
        let s = ProofSettings::default();
        let gpu = challenge_params(&s, ProveOptions::default(), false).unwrap();
        assert_eq!((gpu.n, gpu.rounds, gpu.rounds_sampled), (16_384, 64, 32));
        let cpu = challenge_params(&s, ProveOptions::default(), true).unwrap();
        assert_eq!(
            (cpu.n, cpu.rounds, cpu.rounds_sampled),
            (CPU_ONLY_DEFAULT_N, CPU_ONLY_DEFAULT_ROUNDS, 8)
        );
        let small = ProveOptions {
            n: Some(64),
            rounds: Some(3),
        };
        let p = challenge_params(&s, small, true).unwrap();
        assert_eq!((p.n, p.tile, p.rounds, p.rounds_sampled), (64, 16, 3, 3));
        let too_big = ProveOptions {
            n: Some(4096),
            rounds: None,
        };
        assert!(matches!(
            challenge_params(&s, too_big, true),
            Err(KeeperError::Invalid(_))
        ));
        let odd = ProveOptions {
            n: Some(100),
            rounds: None,
        };
        assert!(matches!(
            challenge_params(&s, odd, false),
            Err(KeeperError::Invalid(_))
        ));
    }
}
