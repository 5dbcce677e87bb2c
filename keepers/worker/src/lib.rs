//! `gpunet-worker`: the agent on a provider's GPU machine.
//!
//! ```text
//!  run() ── connect (capped exponential backoff) ── GetChallenge ── Join(Register signed)
//!              │                                                      │
//!              │      up: heartbeats, results (batched), object replies  ▼
//!              └──── one stream per connection ◀── down: assignments, cancels, pulls
//!                         │
//!                         ├─ executors: builtin | process (own dir, pgid, limits, sandbox) | proof
//!                         └─ object store: outputs above the inline limit stay here
//! ```
//!
//! On shutdown (its `CancellationToken`) the worker tells the keeper it is draining, finishes
//! running tasks (up to `drain_timeout`), then closes. [`WorkerHandle::kill`] instead drops
//! everything at once, as a crash would (tests use it).

#![warn(missing_docs)]

pub mod cgroup;
mod config;
pub mod exec;
pub mod hw;
mod objects;
mod process_task;
pub mod runtime_env;
pub mod sandbox;
pub mod shirk;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::Signer;
use futures::FutureExt;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use pb::worker_message::Msg as Up;
use pb::worker_service_client::WorkerServiceClient;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::{Instrument, info, info_span, warn};

pub use cgroup::{CgroupMode, Cgroups};
pub use config::WorkerConfig;
pub use exec::{GpunetProof, ProofExecutor, ProofIo};
pub use hw::{DeclaredGpus, Hardware};
use objects::ObjectStore;
pub use sandbox::{Sandbox, SandboxMode};

/// Worker errors.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// This worker cannot run here (a sandbox was required and cannot be built).
    #[error("{0}")]
    Unusable(String),
    /// The keeper refused us for good (unknown key, bad signature).
    #[error("refused by keeper: {}: {}", .0.code(), .0.message())]
    Refused(Status),
    /// A transient failure (retried by `run`).
    #[error("{0}")]
    Transient(String),
}

/// Capped exponential backoff: `min · 2^attempt`, at most `max`.
pub fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(max)
}

/// Whether a gRPC failure is worth retrying.
pub fn is_retryable(code: Code) -> bool {
    !matches!(
        code,
        Code::PermissionDenied
            | Code::Unauthenticated
            | Code::InvalidArgument
            | Code::Unimplemented
    )
}

/// State shared between connections of one worker process.
struct Shared {
    cfg: WorkerConfig,
    hw: Hardware,
    objects: Mutex<ObjectStore>,
    proof: Arc<dyn ProofExecutor>,
    /// Proof tasks waiting for their `ProofOpen`: task → (attempt, where to hand the request).
    proof_opens: Mutex<HashMap<u64, (u32, std::sync::mpsc::Sender<Bytes>)>>,
    pause_heartbeats: AtomicBool,
    worker_id: String,
    /// Where process tasks run (`None`: unsandboxed).
    sandbox: Option<Sandbox>,
    /// Their cgroups (`None`: memory limits are `RLIMIT_AS`, no CPU cap).
    cgroups: Option<Cgroups>,
    /// Runtime envs built on this worker (working directories, virtual environments).
    envs: runtime_env::RuntimeEnvs,
}

/// What a required facility resolved to: it, or nothing; and why the worker cannot run, when
/// it was required and cannot be had. Nothing is resolved for a standby connection.
fn settle<T>(
    standby: bool,
    resolve: impl FnOnce() -> Result<Option<T>, String>,
) -> (Option<T>, Option<String>) {
    match if standby { Ok(None) } else { resolve() } {
        Ok(t) => (t, None),
        Err(why) => (None, Some(why)),
    }
}

/// A running worker.
pub struct WorkerHandle {
    /// Graceful shutdown (drain).
    pub cancel: CancellationToken,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<Result<(), WorkerError>>,
}

impl WorkerHandle {
    /// The worker's id (base58 public key).
    pub fn id(&self) -> &str {
        &self.shared.worker_id
    }
    /// Drop everything at once, like a crash: the stream breaks, running tasks are aborted
    /// (their process groups killed), held objects are gone.
    pub fn kill(&self) {
        self.task.abort();
    }
    /// Stop sending heartbeats (the connection stays open): simulates a hung machine.
    pub fn pause_heartbeats(&self, paused: bool) {
        self.shared.pause_heartbeats.store(paused, Ordering::SeqCst);
    }
    /// Number of objects held locally.
    pub fn held_objects(&self) -> usize {
        self.shared.objects.lock().len()
    }
    /// Graceful shutdown and wait.
    pub async fn shutdown(self) -> Result<(), WorkerError> {
        self.cancel.cancel();
        self.join().await
    }
    /// Wait for the worker to stop.
    pub async fn join(self) -> Result<(), WorkerError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => Err(WorkerError::Transient(e.to_string())),
        }
    }
    /// Whether it has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Start a worker (discovering or declaring GPUs) with the default proof executor.
pub fn spawn(cfg: WorkerConfig) -> WorkerHandle {
    spawn_with(cfg, Arc::new(GpunetProof))
}

/// Start a worker with a given proof executor.
pub fn spawn_with(mut cfg: WorkerConfig, proof: Arc<dyn ProofExecutor>) -> WorkerHandle {
    let mut hw = hw::hardware(cfg.declared_gpus.as_ref());
    if let Some(subset) = &cfg.gpu_subset {
        let total = hw.gpus.len().max(1) as u64;
        hw.gpus = hw
            .gpus
            .into_iter()
            .enumerate()
            .filter(|(i, _)| subset.contains(&(*i as u32)))
            .map(|(_, g)| g)
            .collect();
        let share = |x: u64| x * hw.gpus.len() as u64 / total;
        cfg.milli_cpus = share(u64::from(cfg.milli_cpus)) as u32;
        cfg.memory_bytes = share(cfg.memory_bytes);
        hw.note = format!(
            "{}; offering {} of them to this keeper",
            hw.note,
            hw.gpus.len()
        );
    }
    if cfg.standby {
        hw.gpus.clear();
        hw.note = format!("{}; standby connection (no GPUs offered)", hw.note);
    }
    let cfg_object_bytes = cfg.object_store_bytes;
    let cfg_work_dir = cfg.work_dir.clone();
    let worker_id = bs58::encode(cfg.key.verifying_key().as_bytes()).into_string();
    info!(worker = %worker_id, note = %hw.note, "hardware");
    if !hw.cpu_only && !hw.gpus.is_empty() {
        // The keeper times a proof from the moment it sends the challenge: set the GPU up now.
        let p = proof.clone();
        tokio::task::spawn_blocking(move || p.warm_up());
    }
    // A standby connection runs no tasks: it needs neither a sandbox nor cgroups.
    let (sandbox, sandbox_err) = settle(cfg.standby, || cfg.sandbox.resolve());
    let (cgroups, cgroups_err) = settle(cfg.standby, || cfg.cgroups.resolve());
    if sandbox.is_none()
        && sandbox_err.is_none()
        && cfg.sandbox == SandboxMode::Auto
        && !cfg.standby
    {
        warn!(
            "process tasks run UNSANDBOXED: bubblewrap is not installed or cannot build \
             a sandbox here (install `bubblewrap`, or choose --sandbox off to say so)"
        );
    }
    match &cgroups {
        Some(c) => info!(
            version = c.version(),
            "process tasks get a cgroup each (memory and CPU caps)"
        ),
        None if cgroups_err.is_none() && cfg.cgroups == CgroupMode::Auto && !cfg.standby => {
            warn!(
                "process tasks run WITHOUT cgroups: this worker cannot make them here (run it as \
                 root or in a delegated cgroup v2 subtree, or choose --cgroups off to say so); \
                 memory limits fall back to RLIMIT_AS and CPU is not capped"
            )
        }
        None => {}
    }
    let unusable = sandbox_err.or(cgroups_err);
    let shared = Arc::new(Shared {
        cfg,
        hw,
        objects: Mutex::new(ObjectStore::new(cfg_object_bytes)),
        proof,
        proof_opens: Mutex::new(HashMap::new()),
        pause_heartbeats: AtomicBool::new(false),
        worker_id: worker_id.clone(),
        sandbox,
        cgroups,
        envs: runtime_env::RuntimeEnvs::new(
            cfg_work_dir.join("runtime-envs"),
            runtime_env::find_python(),
        ),
    });
    let cancel = CancellationToken::new();
    let task = match unusable {
        Some(why) => tokio::spawn(async move { Err(WorkerError::Unusable(why)) }),
        None => tokio::spawn(
            run(shared.clone(), cancel.clone())
                .instrument(info_span!("worker", worker = %worker_id)),
        ),
    };
    WorkerHandle {
        cancel,
        shared,
        task,
    }
}

async fn run(shared: Arc<Shared>, cancel: CancellationToken) -> Result<(), WorkerError> {
    let mut attempt = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        match connection(&shared, &cancel, &mut attempt).await {
            Ok(()) if cancel.is_cancelled() => return Ok(()),
            Ok(()) => info!("stream ended; reconnecting"),
            Err(WorkerError::Refused(s)) => {
                warn!(code = ?s.code(), msg = s.message(), "refused by keeper; giving up");
                return Err(WorkerError::Refused(s));
            }
            Err(e) => warn!(error = %e, attempt, "connection failed"),
        }
        let d = backoff(attempt, shared.cfg.backoff_min, shared.cfg.backoff_max);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(d) => {}
        }
    }
}

fn status_err(s: Status) -> WorkerError {
    if is_retryable(s.code()) {
        WorkerError::Transient(format!("{}: {}", s.code(), s.message()))
    } else {
        WorkerError::Refused(s)
    }
}

async fn connection(
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
    attempt: &mut u32,
) -> Result<(), WorkerError> {
    let cfg = &shared.cfg;
    let ch: Channel = Endpoint::from_shared(cfg.keeper_url.clone())
        .map_err(|e| WorkerError::Transient(e.to_string()))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| WorkerError::Transient(format!("connect: {e}")))?;
    let mut rpc = WorkerServiceClient::new(ch)
        .max_decoding_message_size(1 << 30)
        .max_encoding_message_size(1 << 30);
    let c = rpc
        .get_challenge(pb::ChallengeRequest {})
        .await
        .map_err(status_err)?
        .into_inner();
    let key = cfg.key.verifying_key().to_bytes();
    let sig = cfg.key.sign(&gpunet_proto::worker_signing_bytes(
        &c.keeper_id,
        &cfg.provider,
        &c.challenge,
        &key,
    ));
    let (up, up_rx) = mpsc::unbounded_channel::<pb::WorkerMessage>();
    let _ = up.send(pb::WorkerMessage {
        msg: Some(Up::Register(pb::Register {
            provider: cfg.provider.clone(),
            worker_key: key.to_vec().into(),
            challenge: c.challenge,
            signature: sig.to_bytes().to_vec().into(),
            gpus: shared.hw.gpus.clone(),
            milli_cpus: cfg.milli_cpus,
            memory_bytes: cfg.memory_bytes,
            cpu_only: shared.hw.cpu_only,
            zone: cfg.zone.clone(),
            labels: cfg.labels.clone(),
            executors: vec!["builtin".into(), "process".into(), "proof".into()],
            lanes: cfg.lanes,
            standby: cfg.standby,
        })),
    });
    let mut down = rpc
        .join(gpunet_proto::coalesce::coalesced(up_rx))
        .await
        .map_err(status_err)?
        .into_inner();
    let registered = match down.message().await.map_err(status_err)? {
        Some(pb::KeeperMessage {
            msg: Some(pb::keeper_message::Msg::Registered(r)),
        }) => r,
        _ => {
            return Err(WorkerError::Transient(
                "keeper did not confirm registration".into(),
            ));
        }
    };
    *attempt = 0;
    info!(worker = %registered.worker_id, "registered");
    let session_hex: String = registered
        .session
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let inline_limit = registered.inline_limit_bytes;
    let hb_every = Duration::from_millis(registered.heartbeat_interval_ms.max(10));

    // Not a child of `cancel`: a graceful shutdown lets running tasks finish (drain); this
    // token kills them only when the connection ends.
    let conn_cancel = CancellationToken::new();
    let drain_acked = Arc::new(AtomicBool::new(false));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let link = Link {
        shared: shared.clone(),
        up: up.clone(),
        running: Arc::new(Mutex::new(HashMap::new())),
        lanes: Arc::new(Mutex::new(HashMap::new())),
        fetcher: Fetcher {
            rpc: rpc.clone(),
            session_hex,
            shared: shared.clone(),
        },
        inline_limit,
        conn_cancel: conn_cancel.clone(),
        drain_acked: drain_acked.clone(),
    };
    // Heartbeats.
    {
        let up = up.clone();
        let shared = shared.clone();
        let stop = conn_cancel.clone();
        let running = link.running.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(hb_every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        if shared.pause_heartbeats.load(Ordering::SeqCst) { continue; }
                        let hb = pb::Heartbeat { running_tasks: running.lock().len() as u64, held_objects: shared.objects.lock().len() as u64 };
                        if up.send(pb::WorkerMessage { msg: Some(Up::Heartbeat(hb)) }).is_err() { break; }
                    }
                }
            }
        });
    }
    let mut draining = false;
    let result = loop {
        if draining {
            // Wait until the keeper has said it sends nothing more and the tasks held (running
            // or waiting in lanes) are done — bounded by the drain timeout — then leave.
            let deadline = tokio::time::Instant::now() + cfg.drain_timeout;
            while !(drain_acked.load(Ordering::SeqCst) && link.running.lock().is_empty())
                && tokio::time::Instant::now() < deadline
            {
                tokio::select! {
                    m = down.message() => match m {
                        Ok(Some(m)) => link.handle_down(m, &mut tasks),
                        _ => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            break Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => {
                info!("draining");
                let _ = up.send(pb::WorkerMessage { msg: Some(Up::Draining(pb::Draining {})) });
                draining = true;
            }
            m = down.message() => match m {
                Ok(Some(m)) => link.handle_down(m, &mut tasks),
                Ok(None) => break Ok(()),
                Err(s) => break Err(WorkerError::Transient(format!("stream: {}", s.message()))),
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    conn_cancel.cancel();
    // Cancel whatever still runs (its process groups die; lane-queued tasks never start) and
    // wait for the loops.
    for (_, r) in link.running.lock().drain() {
        r.ct.cancel();
    }
    while tasks.join_next().await.is_some() {}
    result
}

#[derive(Clone)]
struct Fetcher {
    rpc: WorkerServiceClient<Channel>,
    session_hex: String,
    shared: Arc<Shared>,
}

impl Fetcher {
    /// Resolve an input: inline, held here, or fetched through the keeper.
    async fn resolve(&self, i: &pb::Input) -> Result<Bytes, pb::ObjectRef> {
        match &i.kind {
            Some(pb::input::Kind::Value(v)) => Ok(v.clone()),
            Some(pb::input::Kind::Remote(r)) => {
                if let Some(b) = self.shared.objects.lock().get(&(r.task_id, r.index)) {
                    return Ok(b.clone());
                }
                let mut req = tonic::Request::new(pb::FetchObjectRequest { object: Some(*r) });
                if let Ok(v) = self.session_hex.parse() {
                    req.metadata_mut()
                        .insert(gpunet_proto::WORKER_SESSION_METADATA, v);
                }
                match self.rpc.clone().fetch_object(req).await {
                    Ok(d) => Ok(d.into_inner().data),
                    Err(_) => Err(*r),
                }
            }
            None => Ok(Bytes::new()),
        }
    }
}

/// A task the keeper gave this connection: running, or waiting in its lane.
struct Held {
    attempt: u32,
    ct: CancellationToken,
    lane: u64,
}

/// Lanes (see `Assignment.lane`): a lane exists while one of its tasks runs; the tasks sent
/// into it meanwhile wait here, in order. One tokio task per lane runs them one by one.
type Lanes = HashMap<u64, std::collections::VecDeque<pb::Assignment>>;

/// One connection's task state, shared by the stream loop and the lane runners.
#[derive(Clone)]
struct Link {
    shared: Arc<Shared>,
    up: mpsc::UnboundedSender<pb::WorkerMessage>,
    running: Arc<Mutex<HashMap<u64, Held>>>,
    lanes: Arc<Mutex<Lanes>>,
    fetcher: Fetcher,
    inline_limit: u64,
    conn_cancel: CancellationToken,
    drain_acked: Arc<AtomicBool>,
}

impl Link {
    fn send_result(&self, r: pb::TaskResult) {
        let _ = self.up.send(pb::WorkerMessage {
            msg: Some(Up::Results(pb::TaskResults { results: vec![r] })),
        });
    }

    fn handle_down(&self, m: pb::KeeperMessage, tasks: &mut JoinSet<()>) {
        use pb::keeper_message::Msg as Down;
        match m.msg {
            Some(Down::Assign(a)) => {
                for asg in a.tasks {
                    let lane = asg.lane;
                    let held = Held {
                        attempt: asg.attempt,
                        ct: self.conn_cancel.child_token(),
                        lane,
                    };
                    self.running.lock().insert(asg.task_id, held);
                    if lane != 0 {
                        let mut lanes = self.lanes.lock();
                        if let Some(q) = lanes.get_mut(&lane) {
                            // Its lane is busy: it runs when the tasks ahead of it are done.
                            q.push_back(asg);
                            continue;
                        }
                        lanes.insert(lane, Default::default());
                    }
                    let link = self.clone();
                    tasks.spawn(link.run_lane(lane, asg));
                }
            }
            Some(Down::Cancel(c)) => {
                let (lane, ct) = match self.running.lock().get(&c.task_id) {
                    Some(h) if h.attempt == c.attempt || c.attempt == 0 => (h.lane, h.ct.clone()),
                    _ => return,
                };
                if lane == 0 {
                    ct.cancel();
                    return;
                }
                // Still waiting in its lane: take it out and report it cancelled now.
                let queued = {
                    let mut lanes = self.lanes.lock();
                    lanes.get_mut(&lane).and_then(|q| {
                        let i = q.iter().position(|a| a.task_id == c.task_id)?;
                        q.remove(i)
                    })
                };
                match queued {
                    Some(a) => {
                        self.running.lock().remove(&a.task_id);
                        self.send_result(cancelled(&a));
                    }
                    None => ct.cancel(),
                }
            }
            Some(Down::Pull(p)) => {
                let r = p.object.unwrap_or_default();
                let data = self
                    .shared
                    .objects
                    .lock()
                    .get(&(r.task_id, r.index))
                    .cloned();
                let _ = self.up.send(pb::WorkerMessage {
                    msg: Some(Up::Object(pb::ObjectReply {
                        request_id: p.request_id,
                        found: data.is_some(),
                        data: data.unwrap_or_default(),
                    })),
                });
            }
            Some(Down::Drop(d)) => {
                let mut o = self.shared.objects.lock();
                for r in d.objects {
                    o.remove((r.task_id, r.index));
                }
            }
            Some(Down::ProofOpen(o)) => {
                // Hand the request to the proof task's thread (ignored if it is not waiting,
                // or the open is for another attempt).
                if let Some((attempt, tx)) = self.shared.proof_opens.lock().get(&o.task_id)
                    && *attempt == o.attempt
                {
                    let _ = tx.send(o.request);
                }
            }
            Some(Down::DrainAck(_)) => self.drain_acked.store(true, Ordering::SeqCst),
            Some(Down::Registered(_)) | None => {}
        }
    }

    /// Run a lane's tasks one after another until it has none left (lane 0: just this task).
    async fn run_lane(self, lane: u64, first: pb::Assignment) {
        let mut next = Some(first);
        while let Some(asg) = next {
            let span = info_span!("task", task = asg.task_id, attempt = asg.attempt, lease = %asg.lease_id);
            self.run_one(asg).instrument(span).await;
            if lane == 0 {
                return;
            }
            next = {
                let mut lanes = self.lanes.lock();
                match lanes.get_mut(&lane).and_then(|q| q.pop_front()) {
                    Some(a) => Some(a),
                    None => {
                        lanes.remove(&lane);
                        None
                    }
                }
            };
        }
    }

    async fn run_one(&self, asg: pb::Assignment) {
        let (id, attempt) = (asg.task_id, asg.attempt);
        let ct = match self.running.lock().get(&id) {
            Some(h) if h.attempt == attempt => h.ct.clone(),
            // Replaced by a newer attempt or dropped with the connection.
            _ => return,
        };
        let r = if ct.is_cancelled() {
            cancelled(&asg)
        } else {
            let started = std::time::Instant::now();
            // A panicking executor fails its task, not the lane behind it.
            let run = execute(
                &self.shared,
                &self.fetcher,
                asg,
                self.inline_limit,
                &ct,
                &self.up,
            );
            let mut r = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(r) => r,
                Err(p) => {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    warn!(task = id, panic = %what, "executor panicked");
                    pb::TaskResult {
                        task_id: id,
                        attempt,
                        error_kind: pb::ErrorKind::Application as i32,
                        error: format!("the worker's executor panicked: {what}"),
                        ..Default::default()
                    }
                }
            };
            r.run_micros = started.elapsed().as_micros().max(1) as u64;
            r
        };
        let still_ours = {
            let mut running = self.running.lock();
            match running.get(&id) {
                Some(h) if h.attempt == attempt => running.remove(&id).is_some(),
                _ => false,
            }
        };
        if still_ours || r.error_kind == pb::ErrorKind::Cancelled as i32 {
            self.send_result(r);
        }
    }
}

fn cancelled(a: &pb::Assignment) -> pb::TaskResult {
    pb::TaskResult {
        task_id: a.task_id,
        attempt: a.attempt,
        error_kind: pb::ErrorKind::Cancelled as i32,
        error: "cancelled".into(),
        ..Default::default()
    }
}

/// [`ProofIo`] over the worker's stream: commits and the opening go up as `ProofCommitMsg`
/// and `ProofOpening`; the keeper's `ProofOpen` arrives through `Shared::proof_opens`.
struct StreamIo {
    task_id: u64,
    up: mpsc::UnboundedSender<pb::WorkerMessage>,
    open_rx: std::sync::mpsc::Receiver<Bytes>,
    open_timeout: Duration,
    cancel: CancellationToken,
}

impl ProofIo for StreamIo {
    fn commit(&mut self, commit: Vec<u8>) -> Result<(), String> {
        if self.cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        self.up
            .send(pb::WorkerMessage {
                msg: Some(Up::ProofCommit(pb::ProofCommitMsg {
                    task_id: self.task_id,
                    commit: commit.into(),
                })),
            })
            .map_err(|_| "the keeper stream is gone".to_string())
    }

    fn opening_request(&mut self) -> Result<Vec<u8>, String> {
        let deadline = std::time::Instant::now() + self.open_timeout;
        loop {
            if self.cancel.is_cancelled() {
                return Err("cancelled while waiting for the opening request".into());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no opening request from the keeper within {:?}",
                    self.open_timeout
                ));
            }
            match self
                .open_rx
                .recv_timeout(left.min(Duration::from_millis(50)))
            {
                Ok(r) => return Ok(r.to_vec()),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the keeper stream is gone".into());
                }
            }
        }
    }

    fn opening(&mut self, opening: Vec<u8>) -> Result<(), String> {
        self.up
            .send(pb::WorkerMessage {
                msg: Some(Up::ProofOpening(pb::ProofOpening {
                    task_id: self.task_id,
                    opening: opening.into(),
                })),
            })
            .map_err(|_| "the keeper stream is gone".to_string())
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

/// Runs a proof task: every round (each commit streamed as it exists), then — keeping the
/// prover's state — waits (bounded) for the keeper's `ProofOpen`, answers with the signed
/// opening, and finishes with a one-line summary as output 0.
async fn prove(
    shared: &Arc<Shared>,
    (task_id, attempt): (u64, u32),
    p: pb::ProofTask,
    ct: &CancellationToken,
    up: &mpsc::UnboundedSender<pb::WorkerMessage>,
) -> exec::ExecOutcome {
    let (open_tx, open_rx) = std::sync::mpsc::channel();
    shared
        .proof_opens
        .lock()
        .insert(task_id, (attempt, open_tx));
    let mut io = StreamIo {
        task_id,
        up: up.clone(),
        open_rx,
        open_timeout: shared.cfg.proof_open_timeout,
        cancel: ct.clone(),
    };
    let proof = shared.proof.clone();
    let key = shared.cfg.key.clone();
    let r = tokio::task::spawn_blocking(move || proof.prove(&p.challenge, &key, &mut io)).await;
    {
        let mut opens = shared.proof_opens.lock();
        if opens.get(&task_id).is_some_and(|(at, _)| *at == attempt) {
            opens.remove(&task_id);
        }
    }
    let error = |kind: pb::ErrorKind, error: String| exec::ExecOutcome {
        kind: kind as i32,
        error,
        ..Default::default()
    };
    match r {
        Ok(Ok(summary)) => exec::ExecOutcome {
            outputs: vec![summary.into_bytes().into()],
            ..Default::default()
        },
        Ok(Err(_)) if ct.is_cancelled() => error(pb::ErrorKind::Cancelled, "cancelled".into()),
        Ok(Err(e)) => error(pb::ErrorKind::Application, e),
        Err(e) => error(pb::ErrorKind::Application, e.to_string()),
    }
}

async fn execute(
    shared: &Arc<Shared>,
    fetcher: &Fetcher,
    mut a: pb::Assignment,
    inline_limit: u64,
    ct: &CancellationToken,
    up: &mpsc::UnboundedSender<pb::WorkerMessage>,
) -> pb::TaskResult {
    let mut res = pb::TaskResult {
        task_id: a.task_id,
        attempt: a.attempt,
        ..Default::default()
    };
    let mut inputs = Vec::with_capacity(a.inputs.len());
    let mut lost = Vec::new();
    for i in &a.inputs {
        match fetcher.resolve(i).await {
            Ok(b) => inputs.push(b),
            Err(r) => lost.push(r),
        }
    }
    let stdin = match &a.stdin {
        Some(i) => match fetcher.resolve(i).await {
            Ok(b) => b,
            Err(r) => {
                lost.push(r);
                Bytes::new()
            }
        },
        None => Bytes::new(),
    };
    if !lost.is_empty() {
        res.error_kind = pb::ErrorKind::ObjectLost as i32;
        res.error = format!("{} input(s) could not be fetched", lost.len());
        res.lost = lost;
        return res;
    }
    let spec = a.spec.take().unwrap_or_default();
    let out = match spec.executor {
        Some(pb::task_spec::Executor::Builtin(b)) => exec::builtin(&b, &inputs, ct).await,
        Some(pb::task_spec::Executor::Process(p)) => {
            process_task::run(shared, &a, &p, stdin, ct, up).await
        }
        Some(pb::task_spec::Executor::Proof(p)) => {
            prove(shared, (a.task_id, a.attempt), p, ct, up).await
        }
        None => exec::ExecOutcome {
            kind: pb::ErrorKind::Invalid as i32,
            error: "no executor".into(),
            ..Default::default()
        },
    };
    res.error_kind = out.kind;
    res.error = out.error;
    res.exit_code = out.exit_code;
    if out.kind == pb::ErrorKind::None as i32 {
        for (i, data) in out.outputs.into_iter().enumerate() {
            let index = i as u32;
            if data.len() as u64 <= inline_limit {
                res.outputs.push(pb::Output {
                    index,
                    size: data.len() as u64,
                    data,
                    inline: true,
                });
            } else {
                let size = data.len() as u64;
                shared.objects.lock().insert((a.task_id, index), data);
                res.outputs.push(pb::Output {
                    index,
                    size,
                    data: Bytes::new(),
                    inline: false,
                });
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_exponential() {
        let min = Duration::from_millis(50);
        let max = Duration::from_secs(5);
        assert_eq!(backoff(0, min, max), min);
        assert_eq!(backoff(1, min, max), Duration::from_millis(100));
        assert_eq!(backoff(3, min, max), Duration::from_millis(400));
        assert_eq!(backoff(30, min, max), max);
    }

    #[test]
    fn retryable_codes() {
        assert!(is_retryable(Code::Unavailable));
        assert!(is_retryable(Code::Internal));
        assert!(!is_retryable(Code::PermissionDenied));
        assert!(!is_retryable(Code::Unauthenticated));
    }
}
