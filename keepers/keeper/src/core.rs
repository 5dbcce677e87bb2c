//! The keeper's task lifecycle over one mutex.
//!
//! Everything that must stay consistent — tasks, the dependency graph, object locations,
//! clusters and their schedulers, connected workers — lives in [`Inner`] behind one
//! `parking_lot::Mutex`. Critical sections are short and never await: sends go to unbounded
//! channels (worker streams, the store thread, watch broadcasts). This keeps the hot path
//! lock-then-send with no task hops.
//!
//! Exactly-once completion as seen by clients: a task's terminal state (and its result) is
//! shown to clients only after the store thread reports it durable (the commit sink calls
//! [`Core::on_commit`]). After a crash, accepted tasks that were not durably terminal run again;
//! a client can never have seen them complete. A late result from an older attempt (a worker
//! presumed dead, a retry already running) is ignored by attempt number.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use pb::{ErrorKind, TaskState};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::auth::{Challenges, Sessions};
use crate::directory::{LeaseDirectory, LeaseInfo, WorkerRegistry};
use crate::error::KeeperError;
use crate::metrics::Metrics;
use crate::proofs::ProofRoutes;
use crate::sched::{
    Decision, Grant, PgStrategy, Request, Res, Scheduler, Strategy, WorkerIdx, WorkerSpec,
};
use crate::store::{
    Batch, ClusterRecord, CommitSink, Evidence, GroupRecord, Loaded, OutputRecord, Sent, Store,
    TaskRecord,
};

/// Most tasks in one submit request.
pub const MAX_BATCH: usize = 100_000;
/// How many times a task may be re-run because an input was lost, beyond its retries.
const MAX_LOST_INPUT_RERUNS: u32 = 3;

/// Settings the core needs.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Keeper id (base58 public key) that challenges are bound to.
    pub keeper_id: String,
    /// Largest inline output.
    pub inline_limit: u64,
    /// Default max retries.
    pub default_max_retries: u32,
    /// Heartbeat interval told to workers.
    pub heartbeat_interval: Duration,
    /// Silence after which a worker is dead.
    pub dead_after: Duration,
    /// Tasks queued on a worker behind each running task of a short-running class (0 = off).
    pub pipeline_depth: u32,
    /// Tasks whose name recently ran shorter than this (in their class) are pipelined.
    pub pipeline_below: Duration,
}

/// A state change, broadcast to `Watch` streams.
#[derive(Clone, Debug)]
pub struct Event {
    /// Lease of the task.
    pub lease: Arc<str>,
    /// New status.
    pub status: pb::TaskStatus,
}

#[derive(Clone, Debug)]
enum Out {
    Inline(Bytes),
    Remote { worker: Arc<str>, size: u64 },
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Queued,
    Running,
    Done,
}

struct Task {
    lease: Arc<str>,
    spec: Arc<pb::TaskSpec>,
    state: TaskState,
    phase: Phase,
    durable: bool,
    attempts: u32,
    lost_reruns: u32,
    max_retries: u32,
    deps: Vec<u64>,
    deps_left: u32,
    worker: Option<Arc<str>>,
    grant: Option<Grant>,
    /// Lane it runs in or waits in on its worker (0: none); see [`Lane`].
    lane: u64,
    error_kind: ErrorKind,
    error: String,
    exit_code: Option<i32>,
    outputs: Vec<Out>,
    cancel_requested: bool,
    reconstructing: bool,
    accept_deferred: bool,
    waiters: Vec<Waiter>,
    /// Unix ms when it became terminal (retention counts from here); 0 while not terminal.
    finished_ms: u64,
}

impl Task {
    fn visible_state(&self) -> TaskState {
        match self.state {
            TaskState::Finished | TaskState::Failed | TaskState::Cancelled if !self.durable => {
                TaskState::Running
            }
            s => s,
        }
    }

    fn record(&self, id: u64) -> TaskRecord {
        TaskRecord {
            id,
            lease: self.lease.to_string(),
            spec: Some((*self.spec).clone()),
            state: self.state as i32,
            attempts: self.attempts,
            error_kind: self.error_kind as i32,
            error: self.error.clone(),
            exit_code: self.exit_code,
            outputs: self
                .outputs
                .iter()
                .enumerate()
                .map(|(i, o)| match o {
                    Out::Inline(b) => OutputRecord {
                        index: i as u32,
                        data: b.clone(),
                        inline: true,
                        size: b.len() as u64,
                        worker: String::new(),
                    },
                    Out::Remote { worker, size } => OutputRecord {
                        index: i as u32,
                        data: Bytes::new(),
                        inline: false,
                        size: *size,
                        worker: worker.to_string(),
                    },
                    Out::Lost => OutputRecord {
                        index: i as u32,
                        data: Bytes::new(),
                        inline: false,
                        size: 0,
                        worker: String::new(),
                    },
                })
                .collect(),
            worker: self.worker.as_deref().unwrap_or("").to_string(),
            deps: self.deps.clone(),
            finished_unix_ms: self.finished_ms,
        }
    }
}

/// Someone waiting for a task to become durably terminal (or re-made).
enum Waiter {
    /// One task.
    One(oneshot::Sender<()>),
    /// One of several tasks: the last to fire wakes the waiter (submit-and-wait of a batch
    /// sleeps once instead of once per task).
    Group(Arc<GroupWait>),
}

struct GroupWait {
    /// Tasks still to fire; only changed under the core lock.
    left: std::sync::atomic::AtomicUsize,
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

impl Waiter {
    fn fire(self) {
        match self {
            Waiter::One(tx) => {
                let _ = tx.send(());
            }
            Waiter::Group(g) => {
                if g.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1
                    && let Some(tx) = g.tx.lock().take()
                {
                    let _ = tx.send(());
                }
            }
        }
    }
}

struct Cluster {
    info: LeaseInfo,
    sched: Scheduler,
    members: Vec<Arc<str>>,
    was_ready: bool,
    /// Open lanes by id (`Inner::next_lane`).
    lanes: HashMap<u64, Lane>,
    /// Per scheduling class: recent run time and lanes that may take more tasks.
    pipes: HashMap<u32, Pipe>,
}

/// Pipelining (Ray's `max_tasks_in_flight_per_worker`): a grant on a worker that runs a chain
/// of tasks of one scheduling class, one after another. The worker runs the next task the
/// moment the previous one ends, without waiting for the keeper; the keeper moves the grant
/// to the next task when the previous result arrives. On this project's machines the
/// keeper ↔ worker exchange, not the work, bounds short tasks: a worker with 2 slots idles
/// for a round trip after every task unless a few more are already waiting on it.
struct Lane {
    worker: Arc<str>,
    widx: WorkerIdx,
    class: u32,
    /// The task that holds the grant now (it runs, or has just finished on the worker).
    holder: u64,
    /// Tasks sent to the worker behind it, in order (each counts as an attempt).
    queue: VecDeque<u64>,
    /// Listed in its pipe's `open` (may take more tasks).
    listed: bool,
}

#[derive(Default)]
struct Pipe {
    /// Exponential moving average of successful run times on workers (µs) per task name
    /// within the class (one class is often many different functions: all 1-CPU tasks share
    /// it). A name with no entry is never pipelined: nothing is pipelined blind.
    mean_us: HashMap<String, f64>,
    /// Lanes of this class that may take more tasks (stale ids are skipped).
    open: VecDeque<u64>,
}

/// Most task names whose run time one class remembers; beyond it the memory starts over.
const MAX_NAMES_PER_CLASS: usize = 4096;

/// A connected worker.
struct WorkerConn {
    conn_id: u64,
    provider: String,
    lease: Option<Arc<str>>,
    idx: Option<WorkerIdx>,
    tx: mpsc::UnboundedSender<pb::KeeperMessage>,
    last_seen: Instant,
    reg: pb::Register,
    running: HashSet<u64>,
    session: [u8; 16],
    draining: bool,
}

/// Per-operation side effects, flushed before the lock is released.
#[derive(Default)]
struct Ctx {
    assigns: HashMap<Arc<str>, Vec<pb::Assignment>>,
    batch: Batch,
    events: Vec<Event>,
}

/// Mutable keeper state (see the module docs).
#[derive(Default)]
pub struct Inner {
    tasks: HashMap<u64, Task>,
    next_id: u64,
    clusters: HashMap<Arc<str>, Cluster>,
    workers: HashMap<Arc<str>, WorkerConn>,
    dependents: HashMap<u64, Vec<u64>>,
    held_by: HashMap<Arc<str>, HashSet<u64>>,
    pulls: HashMap<u64, (Arc<str>, oneshot::Sender<Option<Bytes>>)>,
    next_pull: u64,
    next_conn: u64,
    next_lane: u64,
    shutting_down: bool,
}

/// The keeper core shared by the gRPC services and the background loops.
pub struct Core {
    inner: Mutex<Inner>,
    store: Store,
    /// Settings.
    pub cfg: CoreConfig,
    /// Metrics.
    pub metrics: Metrics,
    leases: Arc<dyn LeaseDirectory>,
    registry: Arc<dyn WorkerRegistry>,
    events: broadcast::Sender<Arc<Event>>,
    /// Registration and session challenges.
    pub challenges: Challenges,
    /// Client sessions.
    pub sessions: Sessions,
    /// Where proof messages from workers go (the keeper's running benchmark proofs).
    pub proofs: ProofRoutes,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Result of a `get`.
pub enum GetOutcome {
    /// The task is terminal; `data` is the output when it finished.
    Ready(pb::TaskStatus, Bytes),
    /// Not terminal within the timeout.
    NotReady(pb::TaskStatus),
}

fn known_builtin(name: &str) -> bool {
    matches!(name, "noop" | "echo" | "fill" | "sleep" | "fail")
}

fn validate_spec(i: usize, s: &pb::TaskSpec, batch_len: usize) -> Result<(), KeeperError> {
    use pb::task_spec::Executor;
    match &s.executor {
        None => return Err(KeeperError::Invalid(format!("task {i}: no executor"))),
        Some(Executor::Builtin(b)) if !known_builtin(&b.name) => {
            return Err(KeeperError::Invalid(format!(
                "task {i}: unknown builtin {:?}",
                b.name
            )));
        }
        Some(Executor::Process(p)) if p.argv.is_empty() || p.argv[0].is_empty() => {
            return Err(KeeperError::Invalid(format!(
                "task {i}: process task needs argv"
            )));
        }
        _ => {}
    }
    if let Some(r) = &s.resources
        && r.gpus > 64
    {
        return Err(KeeperError::Invalid(format!(
            "task {i}: at most 64 GPUs per task"
        )));
    }
    for a in &s.args {
        if let Some(pb::task_arg::Kind::BatchRef(j)) = a.kind
            && (j as usize >= i || j as usize >= batch_len)
        {
            return Err(KeeperError::Invalid(format!(
                "task {i}: batch_ref {j} must name an earlier task of the batch"
            )));
        }
    }
    Ok(())
}

fn out_count(spec: &pb::TaskSpec) -> u32 {
    match spec.executor {
        Some(pb::task_spec::Executor::Process(_)) => 2,
        _ => 1,
    }
}

impl Core {
    /// Build the core from what the store loaded, and register its commit sink.
    pub fn new(
        cfg: CoreConfig,
        store: Store,
        loaded: Loaded,
        sink_slot: &Arc<Mutex<Option<CommitSink>>>,
        leases: Arc<dyn LeaseDirectory>,
        registry: Arc<dyn WorkerRegistry>,
        session_ttl: Duration,
    ) -> Arc<Core> {
        let (events, _) = broadcast::channel(1 << 16);
        let core = Arc::new(Core {
            inner: Mutex::new(Inner {
                next_id: 1,
                next_pull: 1,
                next_conn: 1,
                ..Default::default()
            }),
            store,
            cfg,
            metrics: Metrics::new(),
            leases,
            registry,
            events,
            challenges: Challenges::default(),
            sessions: Sessions::new(session_ttl),
            proofs: ProofRoutes::default(),
        });
        let weak: Weak<Core> = Arc::downgrade(&core);
        *sink_slot.lock() = Some(Box::new(move |ids| {
            if let Some(c) = weak.upgrade() {
                c.on_commit(ids);
            }
        }));
        core.recover(loaded);
        core
    }

    fn recover(&self, loaded: Loaded) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut pending = Vec::new();
        for rec in loaded.tasks {
            inner.next_id = inner.next_id.max(rec.id + 1);
            let state = TaskState::try_from(rec.state).unwrap_or(TaskState::Queued);
            let terminal = matches!(
                state,
                TaskState::Finished | TaskState::Failed | TaskState::Cancelled
            );
            let spec = Arc::new(rec.spec.clone().unwrap_or_default());
            let n_out = out_count(&spec) as usize;
            let mut outputs = vec![Out::Lost; if terminal { n_out } else { 0 }];
            for o in &rec.outputs {
                if let Some(slot) = outputs.get_mut(o.index as usize) {
                    *slot = if o.inline {
                        Out::Inline(o.data.clone())
                    } else if !o.worker.is_empty() {
                        let w: Arc<str> = o.worker.as_str().into();
                        inner.held_by.entry(w.clone()).or_default().insert(rec.id);
                        Out::Remote {
                            worker: w,
                            size: o.size,
                        }
                    } else {
                        Out::Lost
                    };
                }
            }
            let max_retries = spec.max_retries.unwrap_or(self.cfg.default_max_retries);
            inner.tasks.insert(
                rec.id,
                Task {
                    lease: rec.lease.as_str().into(),
                    spec,
                    state: if terminal {
                        state
                    } else {
                        TaskState::WaitingForDeps
                    },
                    phase: if terminal {
                        Phase::Done
                    } else {
                        Phase::Waiting
                    },
                    durable: terminal,
                    attempts: rec.attempts,
                    lost_reruns: 0,
                    max_retries,
                    deps: rec.deps.clone(),
                    deps_left: 0,
                    worker: (!rec.worker.is_empty()).then(|| rec.worker.as_str().into()),
                    grant: None,
                    lane: 0,
                    error_kind: ErrorKind::try_from(rec.error_kind).unwrap_or(ErrorKind::None),
                    error: rec.error.clone(),
                    exit_code: rec.exit_code,
                    outputs,
                    cancel_requested: false,
                    reconstructing: false,
                    accept_deferred: false,
                    waiters: Vec::new(),
                    // Records from before retention existed count from the restart.
                    finished_ms: match (terminal, rec.finished_unix_ms) {
                        (true, 0) => now_ms(),
                        (true, t) => t,
                        (false, _) => 0,
                    },
                },
            );
            if !terminal {
                pending.push(rec.id);
            }
        }
        // Placement groups first: recovered tasks may target them.
        for g in loaded.groups {
            let lease: Arc<str> = g.lease.as_str().into();
            if !self.ensure_cluster(inner, &lease) {
                warn!(lease = %lease, pg = g.id, "placement group of a lease that no longer exists: dropped");
                continue;
            }
            let strategy = pg_strategy(
                pb::PlacementStrategy::try_from(g.strategy).unwrap_or(pb::PlacementStrategy::Pack),
            );
            let res = g.bundles.iter().map(res_of).collect();
            if let Some(c) = inner.clusters.get_mut(&lease) {
                c.sched.restore_group(g.id, res, strategy);
            }
        }
        pending.sort_unstable();
        let mut ctx = Ctx::default();
        let n = pending.len();
        for id in pending {
            self.wire_deps_and_ready(inner, id, &mut ctx);
        }
        if n > 0 {
            info!(
                tasks = n,
                "recovered unfinished tasks; they run again as workers join"
            );
        }
        self.flush(inner, ctx);
    }

    /// Subscribe to task events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Lease directory.
    pub fn lease_info(&self, lease: &str) -> Option<LeaseInfo> {
        self.leases.lease(lease)
    }

    /// Worker registry check.
    pub fn worker_allowed(&self, provider: &str, key: &[u8; 32]) -> bool {
        self.registry.is_allowed(provider, key)
    }

    fn flush(&self, inner: &mut Inner, ctx: Ctx) {
        let Ctx {
            assigns,
            batch,
            mut events,
        } = ctx;
        for (w, tasks) in assigns {
            if let Some(conn) = inner.workers.get(&w) {
                let _ = conn.tx.send(pb::KeeperMessage {
                    msg: Some(pb::keeper_message::Msg::Assign(pb::Assignments { tasks })),
                });
            }
        }
        if !batch.is_empty() {
            match self.store.send(batch) {
                // Durable already (`process`/`none` durability, or an in-memory store): the
                // completions become visible now, without a trip through the store thread.
                Sent::Durable(ids) => self.mark_visible(inner, ids, &mut events),
                Sent::Pending => {}
                Sent::Refused => warn!("store is closed; batch not persisted"),
            }
        }
        if self.events.receiver_count() > 0 {
            for e in events {
                let _ = self.events.send(Arc::new(e));
            }
        }
    }

    /// Terminal states of `ids` are durable: show them and wake whoever waits.
    fn mark_visible(&self, inner: &mut Inner, ids: Vec<u64>, events: &mut Vec<Event>) {
        let watched = self.events.receiver_count() > 0;
        for id in ids {
            if let Some(t) = inner.tasks.get_mut(&id)
                && (t.phase == Phase::Done || t.reconstructing)
            {
                t.durable = true;
                for w in t.waiters.drain(..) {
                    w.fire();
                }
            }
            if watched && let Some(t) = inner.tasks.get(&id) {
                events.push(Event {
                    lease: t.lease.clone(),
                    status: self.status_of(id, t),
                });
            }
        }
    }

    fn status_of(&self, id: u64, t: &Task) -> pb::TaskStatus {
        let vis = t.visible_state();
        let terminal = matches!(
            vis,
            TaskState::Finished | TaskState::Failed | TaskState::Cancelled
        );
        pb::TaskStatus {
            task_id: id,
            state: vis as i32,
            name: t.spec.name.clone(),
            attempts: t.attempts,
            worker_id: t.worker.as_deref().unwrap_or("").to_string(),
            error_kind: if terminal { t.error_kind as i32 } else { 0 },
            error: if terminal {
                t.error.clone()
            } else {
                String::new()
            },
            exit_code: if terminal { t.exit_code } else { None },
            result_size: match t.outputs.first() {
                Some(Out::Inline(b)) if terminal => b.len() as u64,
                Some(Out::Remote { size, .. }) if terminal => *size,
                _ => 0,
            },
        }
    }

    fn event(&self, inner: &Inner, id: u64, ctx: &mut Ctx) {
        if self.events.receiver_count() == 0 {
            return;
        }
        if let Some(t) = inner.tasks.get(&id) {
            ctx.events.push(Event {
                lease: t.lease.clone(),
                status: self.status_of(id, t),
            });
        }
    }

    // ---------------------------------------------------------------- clusters

    fn ensure_cluster(&self, inner: &mut Inner, lease: &Arc<str>) -> bool {
        if inner.clusters.contains_key(lease) {
            return true;
        }
        let Some(info) = self.leases.lease(lease) else {
            return false;
        };
        inner.clusters.insert(
            lease.clone(),
            Cluster {
                info,
                sched: Scheduler::new(),
                members: Vec::new(),
                was_ready: false,
                lanes: HashMap::new(),
                pipes: HashMap::new(),
            },
        );
        // Attach idle workers of the provider.
        let idle: Vec<Arc<str>> = inner
            .workers
            .iter()
            .filter(|(_, w)| w.lease.is_none() && !w.draining)
            .map(|(k, _)| k.clone())
            .collect();
        let mut ctx = Ctx::default();
        for k in idle {
            self.try_attach(inner, &k, lease, &mut ctx);
        }
        self.flush(inner, ctx);
        true
    }

    fn gpus_ready(inner: &Inner, c: &Cluster) -> u32 {
        c.members
            .iter()
            .filter_map(|m| inner.workers.get(m))
            .map(|w| w.reg.gpus.len() as u32)
            .sum()
    }

    fn try_attach(
        &self,
        inner: &mut Inner,
        key: &Arc<str>,
        lease: &Arc<str>,
        ctx: &mut Ctx,
    ) -> bool {
        let Some(c) = inner.clusters.get(lease) else {
            return false;
        };
        let Some(w) = inner.workers.get(key) else {
            return false;
        };
        if w.provider != c.info.provider || w.lease.is_some() {
            return false;
        }
        let ready = Self::gpus_ready(inner, c);
        if c.info.gpus > 0 && ready >= c.info.gpus {
            return false;
        }
        let model = w
            .reg
            .gpus
            .first()
            .map(|g| g.model.clone())
            .unwrap_or_default();
        let spec = WorkerSpec {
            key: key.clone(),
            res: Res {
                milli_cpus: w.reg.milli_cpus,
                gpus: w.reg.gpus.len() as u32,
                memory: w.reg.memory_bytes,
            },
            gpu_model: model,
        };
        let Some(c) = inner.clusters.get_mut(lease) else {
            return false;
        };
        let idx = c.sched.add_worker(spec);
        c.members.push(key.clone());
        if let Some(w) = inner.workers.get_mut(key) {
            w.lease = Some(lease.clone());
            w.idx = Some(idx);
        }
        info!(lease = %lease, worker = %key, "worker joined cluster");
        self.cluster_changed(inner, lease, ctx);
        self.dispatch(inner, lease, ctx);
        true
    }

    fn cluster_state(inner: &Inner, c: &Cluster) -> &'static str {
        let ready = Self::gpus_ready(inner, c);
        if ready >= c.info.gpus && !c.members.is_empty() {
            "ready"
        } else if c.was_ready {
            "degraded"
        } else {
            "forming"
        }
    }

    fn cluster_changed(&self, inner: &mut Inner, lease: &Arc<str>, ctx: &mut Ctx) {
        let Some(c) = inner.clusters.get(lease) else {
            return;
        };
        let state = Self::cluster_state(inner, c);
        let rec = ClusterRecord {
            state: state.to_string(),
            workers: c.members.iter().map(|m| m.to_string()).collect(),
        };
        if state == "ready"
            && let Some(c) = inner.clusters.get_mut(lease)
        {
            c.was_ready = true;
        }
        ctx.batch.clusters.push((lease.to_string(), rec));
    }

    /// The cluster of a lease.
    pub fn cluster(&self, lease: &Arc<str>) -> Result<pb::ClusterInfo, KeeperError> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        if !self.ensure_cluster(inner, lease) {
            return Err(KeeperError::NotFound(format!("lease {lease}")));
        }
        let c = &inner.clusters[lease];
        let workers = c
            .members
            .iter()
            .filter_map(|m| inner.workers.get(m).map(|w| (m, w)))
            .map(|(m, w)| pb::WorkerInfo {
                worker_id: m.to_string(),
                zone: w.reg.zone.clone(),
                gpus: w.reg.gpus.clone(),
                milli_cpus: w.reg.milli_cpus,
                memory_bytes: w.reg.memory_bytes,
                cpu_only: w.reg.cpu_only,
                alive: true,
                running_tasks: w.running.len() as u32,
                draining: w.draining,
            })
            .collect();
        let pgs = c
            .sched
            .group_ids()
            .into_iter()
            .filter_map(|id| c.sched.group_info(id).map(|i| pg_info(id, &i)))
            .collect();
        Ok(pb::ClusterInfo {
            lease_id: lease.to_string(),
            provider: c.info.provider.clone(),
            gpus_requested: c.info.gpus,
            gpus_ready: Self::gpus_ready(inner, c),
            state: Self::cluster_state(inner, c).to_string(),
            workers,
            placement_groups: pgs,
        })
    }

    /// Create a placement group on a lease's cluster; it is persisted (and re-created with
    /// the same id after a restart) before the caller sees it.
    pub async fn create_placement_group(
        &self,
        lease: &Arc<str>,
        bundles: &[pb::Resources],
        strategy: pb::PlacementStrategy,
    ) -> Result<pb::PlacementGroupInfo, KeeperError> {
        let (info, ack) = self.create_placement_group_nowait(lease, bundles, strategy)?;
        Self::durable(ack).await?;
        Ok(info)
    }

    fn create_placement_group_nowait(
        &self,
        lease: &Arc<str>,
        bundles: &[pb::Resources],
        strategy: pb::PlacementStrategy,
    ) -> Result<(pb::PlacementGroupInfo, oneshot::Receiver<bool>), KeeperError> {
        if bundles.is_empty() || bundles.len() > 1024 {
            return Err(KeeperError::Invalid(
                "a placement group needs 1..=1024 bundles".into(),
            ));
        }
        let mut g = self.inner.lock();
        let inner = &mut *g;
        if !self.ensure_cluster(inner, lease) {
            return Err(KeeperError::NotFound(format!("lease {lease}")));
        }
        let st = pg_strategy(strategy);
        let res: Vec<Res> = bundles.iter().map(res_of).collect();
        let Some(c) = inner.clusters.get_mut(lease) else {
            return Err(KeeperError::NotFound(format!("lease {lease}")));
        };
        let id = c.sched.create_group(res, st);
        let info = c
            .sched
            .group_info(id)
            .ok_or_else(|| KeeperError::NotFound("placement group".into()))?;
        let (tx, rx) = oneshot::channel();
        let batch = Batch {
            groups: vec![GroupRecord {
                lease: lease.to_string(),
                id,
                bundles: bundles.to_vec(),
                strategy: strategy as i32,
            }],
            ack: Some(tx),
            ..Default::default()
        };
        // A refused batch drops the sender: the caller sees "could not persist".
        let _ = self.store.send(batch);
        Ok((pg_info(id, &info), rx))
    }

    // ---------------------------------------------------------------- submit

    /// Accept a batch of tasks for a lease. Returns their ids once the batch is durable.
    pub async fn submit(
        &self,
        lease: &Arc<str>,
        specs: Vec<pb::TaskSpec>,
    ) -> Result<Vec<u64>, KeeperError> {
        let (ids, ack) = self.submit_nowait(lease, specs, false)?;
        if let Some(ack) = ack {
            Self::durable(ack).await?;
        }
        Ok(ids)
    }

    /// Wait for a submission's durability acknowledgement.
    pub async fn durable(ack: oneshot::Receiver<bool>) -> Result<(), KeeperError> {
        match ack.await {
            Ok(true) => Ok(()),
            _ => Err(KeeperError::Db("could not persist the submission".into())),
        }
    }

    /// Accept a batch and start it; the returned receiver completes when the batch is durable.
    /// The ids must not be shown to the client before that.
    ///
    /// With `defer_accept` (submit-and-wait), the acceptance records are not written at all:
    /// a terminal record carries the whole task, and the client is answered only once its
    /// tasks are durably terminal — or, for those still running at the deadline, after
    /// [`Core::make_durable`]. This saves one commit per synchronous round trip.
    pub fn submit_nowait(
        &self,
        lease: &Arc<str>,
        specs: Vec<pb::TaskSpec>,
        defer_accept: bool,
    ) -> Result<(Vec<u64>, Option<oneshot::Receiver<bool>>), KeeperError> {
        if specs.is_empty() {
            return Err(KeeperError::Invalid("no tasks".into()));
        }
        if specs.len() > MAX_BATCH {
            return Err(KeeperError::Invalid(format!(
                "at most {MAX_BATCH} tasks per request"
            )));
        }
        for (i, s) in specs.iter().enumerate() {
            validate_spec(i, s, specs.len())?;
        }
        let (ack_tx, ack_rx) = oneshot::channel();
        let (ids, ack) = {
            let mut g = self.inner.lock();
            let inner = &mut *g;
            if inner.shutting_down {
                return Err(KeeperError::ShuttingDown);
            }
            if self.store.is_closed() {
                return Err(KeeperError::Db(
                    "the keeper's write-ahead log failed; it accepts no work until restarted (see its log)"
                        .into(),
                ));
            }
            if !self.ensure_cluster(inner, lease) {
                return Err(KeeperError::NotFound(format!("lease {lease}")));
            }
            let first = inner.next_id;
            // Validate object refs before creating anything (a batch is accepted whole or not at all).
            for (i, s) in specs.iter().enumerate() {
                let refs = s.args.iter().filter_map(|a| match &a.kind {
                    Some(pb::task_arg::Kind::Ref(r)) => Some(r),
                    _ => None,
                });
                let stdin_ref = match &s.executor {
                    Some(pb::task_spec::Executor::Process(p)) => {
                        match p.stdin.as_ref().and_then(|a| a.kind.as_ref()) {
                            Some(pb::task_arg::Kind::Ref(r)) => Some(r),
                            Some(pb::task_arg::Kind::BatchRef(_)) => {
                                return Err(KeeperError::Invalid(format!(
                                    "task {i}: stdin cannot be a batch_ref; use an object ref"
                                )));
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                };
                for r in refs.chain(stdin_ref) {
                    match inner.tasks.get(&r.task_id) {
                        Some(t) if t.lease == *lease && r.index < out_count(&t.spec) => {}
                        _ => {
                            return Err(KeeperError::NotFound(format!(
                                "task {i}: unknown object {}:{}",
                                r.task_id, r.index
                            )));
                        }
                    }
                }
            }
            let mut ctx = Ctx::default();
            let ids: Vec<u64> = (first..first + specs.len() as u64).collect();
            inner.next_id = first + specs.len() as u64;
            for (i, mut spec) in specs.into_iter().enumerate() {
                let id = ids[i];
                // Rewrite batch refs to object refs.
                for a in spec.args.iter_mut() {
                    if let Some(pb::task_arg::Kind::BatchRef(j)) = a.kind {
                        a.kind = Some(pb::task_arg::Kind::Ref(pb::ObjectRef {
                            task_id: ids[j as usize],
                            index: 0,
                        }));
                    }
                }
                let mut deps: Vec<u64> = spec
                    .args
                    .iter()
                    .filter_map(|a| match &a.kind {
                        Some(pb::task_arg::Kind::Ref(r)) => Some(r.task_id),
                        _ => None,
                    })
                    .collect();
                if let Some(pb::task_spec::Executor::Process(p)) = &spec.executor
                    && let Some(pb::task_arg::Kind::Ref(r)) =
                        p.stdin.as_ref().and_then(|a| a.kind.as_ref())
                {
                    deps.push(r.task_id);
                }
                deps.sort_unstable();
                deps.dedup();
                let max_retries = spec.max_retries.unwrap_or(self.cfg.default_max_retries);
                inner.tasks.insert(
                    id,
                    Task {
                        lease: lease.clone(),
                        spec: Arc::new(spec),
                        state: TaskState::WaitingForDeps,
                        phase: Phase::Waiting,
                        durable: false,
                        attempts: 0,
                        lost_reruns: 0,
                        max_retries,
                        deps,
                        deps_left: 0,
                        worker: None,
                        grant: None,
                        lane: 0,
                        error_kind: ErrorKind::None,
                        error: String::new(),
                        exit_code: None,
                        outputs: Vec::new(),
                        cancel_requested: false,
                        reconstructing: false,
                        accept_deferred: false,
                        waiters: Vec::new(),
                        finished_ms: 0,
                    },
                );
                match inner.tasks.get_mut(&id) {
                    Some(t) if defer_accept => t.accept_deferred = true,
                    Some(t) => ctx.batch.tasks.push(t.record(id)),
                    None => {}
                }
            }
            for &id in &ids {
                self.wire_deps_and_ready(inner, id, &mut ctx);
                self.event(inner, id, &mut ctx);
            }
            let ack = if defer_accept {
                None
            } else {
                ctx.batch.ack = Some(ack_tx);
                Some(ack_rx)
            };
            self.metrics.tasks_submitted.inc_by(ids.len() as u64);
            self.flush(inner, ctx);
            (ids, ack)
        };
        Ok((ids, ack))
    }

    /// Persist the acceptance of deferred tasks that are not durably terminal yet. Returns
    /// None when there is nothing to wait for.
    pub fn make_durable(&self, ids: &[u64]) -> Option<oneshot::Receiver<bool>> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut batch = Batch::default();
        let mut pending = false;
        for &id in ids {
            let Some(t) = inner.tasks.get_mut(&id) else {
                continue;
            };
            if t.accept_deferred {
                t.accept_deferred = false;
                // A task already done has its terminal record queued (FIFO): nothing to add.
                if t.phase != Phase::Done {
                    batch.tasks.push(t.record(id));
                }
            }
            pending |= !t.durable;
        }
        if !pending {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        batch.ack = Some(tx);
        // Dropped sender (store closed) reads as "not persisted".
        let _ = self.store.send(batch);
        Some(rx)
    }

    /// Count unfinished deps, register as dependent, and make ready if none.
    fn wire_deps_and_ready(&self, inner: &mut Inner, id: u64, ctx: &mut Ctx) {
        let Some(t) = inner.tasks.get(&id) else {
            return;
        };
        let lease = t.lease.clone();
        if !self.ensure_cluster(inner, &lease) {
            self.finish_failed(
                inner,
                id,
                ErrorKind::Unschedulable,
                format!("lease {lease} no longer exists"),
                None,
                ctx,
            );
            return;
        }
        let deps = inner
            .tasks
            .get(&id)
            .map(|t| t.deps.clone())
            .unwrap_or_default();
        let mut left = 0;
        for d in deps {
            match inner.tasks.get(&d).map(|t| (t.phase, t.state)) {
                Some((Phase::Done, TaskState::Finished)) => {}
                Some((Phase::Done, _)) => {
                    let msg = format!("dependency {d} failed");
                    self.finish_failed(inner, id, ErrorKind::DependencyFailed, msg, None, ctx);
                    return;
                }
                Some(_) => {
                    left += 1;
                    inner.dependents.entry(d).or_default().push(id);
                }
                None => {
                    self.finish_failed(
                        inner,
                        id,
                        ErrorKind::DependencyFailed,
                        format!("dependency {d} unknown"),
                        None,
                        ctx,
                    );
                    return;
                }
            }
        }
        if let Some(t) = inner.tasks.get_mut(&id) {
            t.deps_left = left;
            t.phase = Phase::Waiting;
            if !t.reconstructing {
                t.state = TaskState::WaitingForDeps;
            }
        }
        if left == 0 {
            self.make_ready(inner, id, ctx);
        }
    }

    fn request_of(&self, c: &Cluster, spec: &pb::TaskSpec) -> Result<Request, String> {
        let r = spec.resources.clone().unwrap_or(pb::Resources {
            milli_cpus: 1000,
            ..Default::default()
        });
        let res = Res {
            milli_cpus: r.milli_cpus,
            gpus: r.gpus,
            memory: r.memory_bytes,
        };
        let gpu_model = (!r.gpu_model.is_empty()).then(|| Arc::<str>::from(r.gpu_model.as_str()));
        use pb::scheduling_strategy::Kind;
        let strategy = match spec.strategy.as_ref().and_then(|s| s.kind.as_ref()) {
            None | Some(Kind::Default(_)) => Strategy::Default,
            Some(Kind::Spread(_)) => Strategy::Spread,
            Some(Kind::NodeAffinity(a)) => c.sched.affinity(&a.worker_id, a.soft, &res)?,
            Some(Kind::PlacementGroup(p)) => Strategy::Group {
                pg: p.placement_group_id,
                bundle: (p.bundle_index >= 0).then_some(p.bundle_index as u32),
            },
        };
        Ok(Request {
            res,
            gpu_model,
            strategy,
        })
    }

    /// All inputs available: check none is lost, then hand to the scheduler.
    fn make_ready(&self, inner: &mut Inner, id: u64, ctx: &mut Ctx) {
        let Some(t) = inner.tasks.get(&id) else {
            return;
        };
        if t.phase != Phase::Waiting {
            return;
        }
        if t.cancel_requested {
            self.finish_failed(
                inner,
                id,
                ErrorKind::Cancelled,
                "cancelled".into(),
                None,
                ctx,
            );
            return;
        }
        // Lost inputs: re-make them from their task first (lineage).
        let lost: Vec<u64> = t
            .deps
            .iter()
            .copied()
            .filter(|d| {
                inner
                    .tasks
                    .get(d)
                    .is_some_and(|dt| dt.outputs.iter().any(|o| matches!(o, Out::Lost)))
            })
            .collect();
        if !lost.is_empty() {
            for d in &lost {
                inner.dependents.entry(*d).or_default().push(id);
                self.reconstruct(inner, *d, ctx);
            }
            if let Some(t) = inner.tasks.get_mut(&id) {
                t.deps_left = lost.len() as u32;
            }
            return;
        }
        let lease = t.lease.clone();
        let spec = t.spec.clone();
        let Some(c) = inner.clusters.get_mut(&lease) else {
            return;
        };
        let req = match self.request_of(c, &spec) {
            Ok(r) => r,
            Err(msg) => {
                self.finish_failed(inner, id, ErrorKind::Unschedulable, msg, None, ctx);
                return;
            }
        };
        match c.sched.submit(id, &req) {
            Decision::Run(g) => self.start(inner, id, g, ctx),
            Decision::Queued => {
                if let Some(t) = inner.tasks.get_mut(&id) {
                    t.phase = Phase::Queued;
                    if !t.reconstructing {
                        t.state = TaskState::Queued;
                    }
                }
                if self.cfg.pipeline_depth > 0 && req.strategy == Strategy::Default {
                    let class = c.sched.class_id(&req);
                    self.fill_open_lanes(inner, &lease, class, ctx);
                }
            }
            Decision::Unschedulable(msg) => {
                self.finish_failed(inner, id, ErrorKind::Unschedulable, msg, None, ctx)
            }
        }
    }

    fn input_of(inner: &Inner, r: &pb::ObjectRef) -> pb::Input {
        use pb::input::Kind;
        let kind = match inner
            .tasks
            .get(&r.task_id)
            .and_then(|t| t.outputs.get(r.index as usize))
        {
            Some(Out::Inline(b)) => Kind::Value(b.clone()),
            _ => Kind::Remote(*r),
        };
        pb::Input { kind: Some(kind) }
    }

    /// The assignment that sends task `id` to a worker.
    fn assignment(inner: &Inner, id: u64, gpu_ids: Vec<u32>, lane: u64) -> pb::Assignment {
        let t = &inner.tasks[&id];
        let inputs = t
            .spec
            .args
            .iter()
            .map(|a| match &a.kind {
                Some(pb::task_arg::Kind::Value(v)) => pb::Input {
                    kind: Some(pb::input::Kind::Value(v.clone())),
                },
                Some(pb::task_arg::Kind::Ref(r)) => Self::input_of(inner, r),
                _ => pb::Input {
                    kind: Some(pb::input::Kind::Value(Bytes::new())),
                },
            })
            .collect();
        let stdin = match &t.spec.executor {
            Some(pb::task_spec::Executor::Process(p)) => p
                .stdin
                .as_ref()
                .and_then(|a| a.kind.as_ref())
                .map(|k| match k {
                    pb::task_arg::Kind::Value(v) => pb::Input {
                        kind: Some(pb::input::Kind::Value(v.clone())),
                    },
                    pb::task_arg::Kind::Ref(r) => Self::input_of(inner, r),
                    pb::task_arg::Kind::BatchRef(_) => pb::Input {
                        kind: Some(pb::input::Kind::Value(Bytes::new())),
                    },
                }),
            _ => None,
        };
        pb::Assignment {
            task_id: id,
            attempt: t.attempts + 1,
            lease_id: t.lease.to_string(),
            spec: Some((*t.spec).clone()),
            inputs,
            stdin,
            gpu_ids,
            lane,
        }
    }

    fn start(&self, inner: &mut Inner, id: u64, g: Grant, ctx: &mut Ctx) {
        let lease = inner.tasks[&id].lease.clone();
        let Some(c) = inner.clusters.get(&lease) else {
            return;
        };
        let Some(key) = c.sched.worker_key(g.worker).cloned() else {
            return;
        };
        // Tasks of the default strategy may open a lane (pipelining); proof tasks never: their
        // clock starts when the assignment goes out.
        let is_proof = matches!(
            inner.tasks[&id].spec.executor,
            Some(pb::task_spec::Executor::Proof(_))
        );
        let lane = if self.cfg.pipeline_depth > 0
            && !is_proof
            && inner.workers.get(&key).is_some_and(|w| w.reg.lanes)
            && c.sched
                .class_request(g.class)
                .is_some_and(|r| r.strategy == Strategy::Default)
        {
            // Not the task id: a retried task may start again while its old lane still runs.
            inner.next_lane += 1;
            inner.next_lane
        } else {
            0
        };
        let (class, g_worker) = (g.class, g.worker);
        let assignment = Self::assignment(inner, id, g.gpu_ids(), lane);
        if let Some(t) = inner.tasks.get_mut(&id) {
            t.attempts += 1;
            t.phase = Phase::Running;
            if !t.reconstructing {
                t.state = TaskState::Running;
            }
            t.worker = Some(key.clone());
            t.grant = Some(g);
            t.lane = lane;
        }
        if let Some(w) = inner.workers.get_mut(&key) {
            w.running.insert(id);
        }
        // A benchmark proof's clock starts as its assignment goes out (flushed before unlock).
        if let Some(pb::task_spec::Executor::Proof(p)) =
            assignment.spec.as_ref().and_then(|s| s.executor.as_ref())
        {
            let tx = inner.workers.get(&key).map(|w| &w.tx);
            self.proofs
                .assigned(&p.challenge, id, assignment.attempt, &key, tx);
        }
        debug!(task = id, lease = %lease, worker = %key, "assigned");
        ctx.assigns.entry(key.clone()).or_default().push(assignment);
        self.event(inner, id, ctx);
        if lane != 0 {
            if let Some(c) = inner.clusters.get_mut(&lease) {
                c.lanes.insert(
                    lane,
                    Lane {
                        worker: key,
                        widx: g_worker,
                        class,
                        holder: id,
                        queue: VecDeque::new(),
                        listed: false,
                    },
                );
            }
            self.fill_lane(inner, &lease, lane, ctx);
        }
    }

    /// Whether a lane may take more tasks now: room in it, its worker not draining, and
    /// nothing else waiting for resources its worker could give.
    fn lane_room(&self, inner: &Inner, c: &Cluster, lane: &Lane) -> bool {
        lane.queue.len() < self.cfg.pipeline_depth as usize
            && inner.workers.get(&lane.worker).is_some_and(|w| !w.draining)
            && !c.sched.others_waiting(lane.class, lane.widx)
    }

    /// Whether a queued task may wait in a lane: its name is known to run short in its class,
    /// it may be retried (a task waiting on a worker that dies counts an attempt), and it is
    /// not a benchmark proof (whose clock starts when the assignment goes out).
    fn pipelinable(&self, pipe: Option<&Pipe>, t: &Task) -> bool {
        let below = self.cfg.pipeline_below.as_secs_f64() * 1e6;
        t.max_retries > 0
            && !matches!(t.spec.executor, Some(pb::task_spec::Executor::Proof(_)))
            && pipe
                .and_then(|p| p.mean_us.get(t.spec.name.as_str()))
                .is_some_and(|&m| m < below)
    }

    /// Send queued tasks of the lane's class into the lane while it has room; list it as open
    /// if room is left when the queue runs dry.
    fn fill_lane(&self, inner: &mut Inner, lease: &Arc<str>, lane: u64, ctx: &mut Ctx) {
        loop {
            let Some(c) = inner.clusters.get(lease) else {
                return;
            };
            let Some(l) = c.lanes.get(&lane) else {
                return;
            };
            if !self.lane_room(inner, c, l) {
                return;
            }
            let class = l.class;
            let Inner {
                clusters, tasks, ..
            } = &mut *inner;
            let c = clusters.get_mut(lease).expect("cluster checked above");
            let next = match c.sched.peek_queued(class) {
                Some(id)
                    if tasks
                        .get(&id)
                        .is_some_and(|t| self.pipelinable(c.pipes.get(&class), t)) =>
                {
                    c.sched.pop_queued(class);
                    id
                }
                // The oldest waits for a grant of its own (order is kept: nothing overtakes it).
                Some(_) => return,
                None => {
                    // Room left: later submissions of the class may come here directly.
                    let l = c.lanes.get_mut(&lane).expect("lane checked above");
                    if !l.listed {
                        l.listed = true;
                        let p = c.pipes.entry(class).or_default();
                        p.open.push_back(lane);
                        // Closed lanes leave their ids behind; drop them once they dominate.
                        if p.open.len() > 2 * c.lanes.len() + 16 {
                            let lanes = &c.lanes;
                            p.open.retain(|id| lanes.get(id).is_some_and(|l| l.listed));
                        }
                    }
                    return;
                }
            };
            self.pipe(inner, lease, lane, next, ctx);
        }
    }

    /// A task of `class` just queued: hand queued tasks of the class to open lanes, oldest
    /// first (the scheduler's queue order is kept).
    fn fill_open_lanes(&self, inner: &mut Inner, lease: &Arc<str>, class: u32, ctx: &mut Ctx) {
        loop {
            let Some(c) = inner.clusters.get_mut(lease) else {
                return;
            };
            let Some(lane) = c.pipes.get_mut(&class).and_then(|p| p.open.pop_front()) else {
                return;
            };
            let Some(l) = c.lanes.get_mut(&lane) else {
                continue; // closed since it was listed
            };
            l.listed = false;
            self.fill_lane(inner, lease, lane, ctx);
            let still_open = inner
                .clusters
                .get(lease)
                .and_then(|c| c.lanes.get(&lane))
                .is_some_and(|l| l.listed);
            // Listed again means the class's queue ran dry; otherwise the lane filled up or
            // stopped taking tasks, and the next open lane may take what is left.
            let drained = still_open
                || inner
                    .clusters
                    .get_mut(lease)
                    .is_none_or(|c| c.sched.peek_queued(class).is_none());
            if drained {
                return;
            }
        }
    }

    /// Send task `id` (popped from the scheduler's queue) into a lane on the lane's worker.
    fn pipe(&self, inner: &mut Inner, lease: &Arc<str>, lane: u64, id: u64, ctx: &mut Ctx) {
        let Some(l) = inner
            .clusters
            .get_mut(lease)
            .and_then(|c| c.lanes.get_mut(&lane))
        else {
            return;
        };
        l.queue.push_back(id);
        let (worker, holder) = (l.worker.clone(), l.holder);
        let gpu_ids = inner
            .tasks
            .get(&holder)
            .and_then(|t| t.grant.as_ref())
            .map(|g| g.gpu_ids())
            .unwrap_or_default();
        let assignment = Self::assignment(inner, id, gpu_ids, lane);
        if let Some(t) = inner.tasks.get_mut(&id) {
            // It stays Queued for the client until the grant reaches it.
            t.attempts += 1;
            t.phase = Phase::Running;
            t.worker = Some(worker.clone());
            t.grant = None;
            t.lane = lane;
        }
        if let Some(w) = inner.workers.get_mut(&worker) {
            w.running.insert(id);
        }
        self.metrics.tasks_pipelined.inc();
        debug!(task = id, lease = %lease, worker = %worker, lane, "pipelined");
        ctx.assigns.entry(worker).or_default().push(assignment);
    }

    fn dispatch(&self, inner: &mut Inner, lease: &Arc<str>, ctx: &mut Ctx) {
        let mut out = Vec::new();
        if let Some(c) = inner.clusters.get_mut(lease) {
            c.sched.dispatch_queued(&mut out);
        }
        for (id, g) in out {
            self.start(inner, id, g, ctx);
        }
    }

    /// Detach a task that stopped running from its worker and lane; returns its grant.
    fn take_grant(inner: &mut Inner, id: u64) -> Option<Grant> {
        let t = inner.tasks.get_mut(&id)?;
        t.lane = 0;
        let grant = t.grant.take();
        if let Some(w) = t.worker.clone()
            && let Some(conn) = inner.workers.get_mut(&w)
        {
            conn.running.remove(&id);
        }
        grant
    }

    fn release_grant(&self, inner: &mut Inner, id: u64) {
        let Some(lease) = inner.tasks.get(&id).map(|t| t.lease.clone()) else {
            return;
        };
        if let (Some(g), Some(c)) = (Self::take_grant(inner, id), inner.clusters.get_mut(&lease)) {
            c.sched.release(&g);
        }
    }

    /// A task's result arrived: its grant goes back, or on to the next task of its lane.
    fn end_run(&self, inner: &mut Inner, id: u64, run_micros: u64, ctx: &mut Ctx) {
        let Some(t) = inner.tasks.get(&id) else {
            return;
        };
        let lane = t.lane;
        if lane == 0 {
            self.release_grant(inner, id);
            return;
        }
        let lease = t.lease.clone();
        let Some(c) = inner.clusters.get_mut(&lease) else {
            self.release_grant(inner, id);
            return;
        };
        let Some(l) = c.lanes.get_mut(&lane) else {
            self.release_grant(inner, id);
            return;
        };
        let class = l.class;
        if run_micros > 0
            && let Some(t) = inner.tasks.get(&id)
        {
            let p = c.pipes.entry(class).or_default();
            let x = run_micros as f64;
            match p.mean_us.get_mut(t.spec.name.as_str()) {
                Some(m) => *m += (x - *m) / 8.0,
                None => {
                    if p.mean_us.len() >= MAX_NAMES_PER_CLASS {
                        p.mean_us.clear();
                    }
                    p.mean_us.insert(t.spec.name.clone(), x);
                }
            }
        }
        let l = c.lanes.get_mut(&lane).expect("lane checked above");
        if l.holder != id {
            // Ended while still waiting in the lane (cancelled): the holder keeps the grant.
            l.queue.retain(|&q| q != id);
            self.release_grant(inner, id);
            return;
        }
        let Some(next) = l.queue.pop_front() else {
            c.lanes.remove(&lane);
            self.release_grant(inner, id);
            return;
        };
        // The worker has started `next` already (or is about to): it inherits the grant.
        l.holder = next;
        let grant = Self::take_grant(inner, id);
        if let Some(t) = inner.tasks.get_mut(&next) {
            t.grant = grant;
            if !t.reconstructing && !t.cancel_requested {
                t.state = TaskState::Running;
            }
        }
        self.event(inner, next, ctx);
        self.fill_lane(inner, &lease, lane, ctx);
    }

    fn finish_ok(
        &self,
        inner: &mut Inner,
        id: u64,
        outputs: Vec<Out>,
        exit_code: Option<i32>,
        ctx: &mut Ctx,
    ) {
        let Some(t) = inner.tasks.get_mut(&id) else {
            return;
        };
        let worker = t.worker.clone();
        for o in &outputs {
            if let (Out::Remote { worker: w, .. }, Some(_)) = (o, &worker) {
                inner.held_by.entry(w.clone()).or_default().insert(id);
            }
        }
        let Some(t) = inner.tasks.get_mut(&id) else {
            return;
        };
        t.outputs = outputs;
        t.phase = Phase::Done;
        t.finished_ms = now_ms();
        t.exit_code = exit_code;
        t.error_kind = ErrorKind::None;
        t.error.clear();
        if t.reconstructing {
            // Already reported complete once: do not report again, just wake getters.
            t.reconstructing = false;
            for w in t.waiters.drain(..) {
                w.fire();
            }
        } else {
            t.state = TaskState::Finished;
            ctx.batch.visible.push(id);
            self.metrics.tasks_finished.inc();
        }
        ctx.batch.tasks.push(t.record(id));
        let deps = inner.dependents.remove(&id).unwrap_or_default();
        for d in deps {
            let ready = match inner.tasks.get_mut(&d) {
                Some(dt) if dt.phase == Phase::Waiting && dt.deps_left > 0 => {
                    dt.deps_left -= 1;
                    dt.deps_left == 0
                }
                _ => false,
            };
            if ready {
                self.make_ready(inner, d, ctx);
            }
        }
    }

    fn finish_failed(
        &self,
        inner: &mut Inner,
        id: u64,
        kind: ErrorKind,
        msg: String,
        exit_code: Option<i32>,
        ctx: &mut Ctx,
    ) {
        let mut work = vec![(id, kind, msg)];
        while let Some((id, kind, msg)) = work.pop() {
            let Some(t) = inner.tasks.get_mut(&id) else {
                continue;
            };
            if t.phase == Phase::Done && !t.reconstructing {
                continue;
            }
            if t.phase == Phase::Queued {
                let lease = t.lease.clone();
                if let Some(c) = inner.clusters.get_mut(&lease) {
                    c.sched.cancel_queued(id);
                }
            }
            let Some(t) = inner.tasks.get_mut(&id) else {
                continue;
            };
            t.phase = Phase::Done;
            t.finished_ms = now_ms();
            if t.reconstructing {
                // A finished task whose lost output could not be re-made: it stays finished for
                // the client, its output is lost.
                t.reconstructing = false;
                t.outputs = t.outputs.iter().map(|_| Out::Lost).collect();
                t.error = format!("output lost and could not be re-made: {msg}");
                for w in t.waiters.drain(..) {
                    w.fire();
                }
            } else {
                t.state = if kind == ErrorKind::Cancelled {
                    TaskState::Cancelled
                } else {
                    TaskState::Failed
                };
                t.error_kind = kind;
                t.error = msg.clone();
                t.exit_code = exit_code.or(t.exit_code);
                ctx.batch.visible.push(id);
                self.metrics.tasks_failed.inc();
            }
            ctx.batch.tasks.push(t.record(id));
            warn!(task = id, kind = ?kind, error = %msg, "task failed");
            for d in inner.dependents.remove(&id).unwrap_or_default() {
                let dkind = if kind == ErrorKind::ObjectLost {
                    ErrorKind::ObjectLost
                } else {
                    ErrorKind::DependencyFailed
                };
                work.push((d, dkind, format!("dependency {id} failed: {msg}")));
            }
        }
    }

    /// A system failure (worker died, input lost): retry within budget or fail.
    fn retry_or_fail(
        &self,
        inner: &mut Inner,
        id: u64,
        kind: ErrorKind,
        msg: String,
        ctx: &mut Ctx,
    ) {
        let Some(t) = inner.tasks.get(&id) else {
            return;
        };
        if t.cancel_requested {
            self.finish_failed(
                inner,
                id,
                ErrorKind::Cancelled,
                "cancelled".into(),
                None,
                ctx,
            );
        } else if t.attempts <= t.max_retries {
            self.metrics.task_retries.inc();
            info!(task = id, attempt = t.attempts, reason = %msg, "retrying task");
            if let Some(t) = inner.tasks.get_mut(&id) {
                t.phase = Phase::Waiting;
                t.worker = None;
            }
            self.wire_deps_and_ready(inner, id, ctx);
            self.event(inner, id, ctx);
        } else {
            let m = format!(
                "{msg} (after {} attempts; max_retries = {})",
                t.attempts, t.max_retries
            );
            self.finish_failed(inner, id, kind, m, None, ctx);
        }
    }

    /// Re-run a finished task whose output was lost (lineage reconstruction).
    fn reconstruct(&self, inner: &mut Inner, id: u64, ctx: &mut Ctx) {
        let Some(t) = inner.tasks.get_mut(&id) else {
            return;
        };
        if t.phase != Phase::Done || t.state != TaskState::Finished || t.reconstructing {
            return;
        }
        if t.lost_reruns > t.max_retries + MAX_LOST_INPUT_RERUNS {
            return;
        }
        t.lost_reruns += 1;
        t.reconstructing = true;
        t.phase = Phase::Waiting;
        self.metrics.task_retries.inc();
        info!(task = id, "re-making lost output from its task (lineage)");
        self.wire_deps_and_ready(inner, id, ctx);
    }

    // ---------------------------------------------------------------- worker side

    /// Admit a verified worker; returns its connection id, session secret and receiver of
    /// keeper messages.
    pub fn register_worker(
        &self,
        key: Arc<str>,
        reg: pb::Register,
    ) -> Result<(u64, [u8; 16], mpsc::UnboundedReceiver<pb::KeeperMessage>), KeeperError> {
        let session = crate::auth::random_bytes::<16>()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = self.inner.lock();
        let inner = &mut *g;
        if inner.shutting_down {
            return Err(KeeperError::ShuttingDown);
        }
        let mut ctx = Ctx::default();
        if let Some(old) = inner.workers.get(&key).map(|w| w.conn_id) {
            self.lose_worker(
                inner,
                &key,
                old,
                "replaced by a new connection".into(),
                &mut ctx,
            );
        }
        let conn_id = inner.next_conn;
        inner.next_conn += 1;
        let provider = reg.provider.clone();
        let _ = tx.send(pb::KeeperMessage {
            msg: Some(pb::keeper_message::Msg::Registered(pb::Registered {
                worker_id: key.to_string(),
                session: Bytes::copy_from_slice(&session),
                heartbeat_interval_ms: self.cfg.heartbeat_interval.as_millis() as u64,
                inline_limit_bytes: self.cfg.inline_limit,
            })),
        });
        inner.workers.insert(
            key.clone(),
            WorkerConn {
                conn_id,
                provider: provider.clone(),
                lease: None,
                idx: None,
                tx,
                last_seen: Instant::now(),
                reg,
                running: HashSet::new(),
                session,
                draining: false,
            },
        );
        self.metrics.workers_connected.inc();
        info!(worker = %key, provider = %provider, "worker registered");
        for l in self.leases.leases_for_provider(&provider) {
            let lease: Arc<str> = l.lease_id.as_str().into();
            self.ensure_cluster(inner, &lease);
            if inner.workers.get(&key).is_some_and(|w| w.lease.is_some()) {
                break;
            }
            if self.try_attach(inner, &key, &lease, &mut ctx) {
                break;
            }
        }
        self.flush(inner, ctx);
        Ok((conn_id, session, rx))
    }

    /// Note that a worker is alive.
    pub fn touch(&self, key: &Arc<str>, conn_id: u64) {
        if let Some(w) = self.inner.lock().workers.get_mut(key)
            && w.conn_id == conn_id
        {
            w.last_seen = Instant::now();
        }
    }

    /// Worker says it is draining.
    pub fn worker_draining(&self, key: &Arc<str>, conn_id: u64) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let Some(w) = inner.workers.get_mut(key).filter(|w| w.conn_id == conn_id) else {
            return;
        };
        w.draining = true;
        // Sent under the lock, after every assignment this worker will ever get from us.
        let _ = w.tx.send(pb::KeeperMessage {
            msg: Some(pb::keeper_message::Msg::DrainAck(pb::DrainAck {})),
        });
        let (lease, idx) = (w.lease.clone(), w.idx);
        if let (Some(l), Some(i)) = (lease, idx)
            && let Some(c) = inner.clusters.get_mut(&l)
        {
            c.sched.set_draining(i);
        }
        info!(worker = %key, "worker draining");
    }

    /// Check a worker's FetchObject session.
    pub fn worker_session_ok(&self, session: &[u8]) -> bool {
        self.inner
            .lock()
            .workers
            .values()
            .any(|w| w.session[..] == *session)
    }

    /// Results from a worker.
    pub fn on_results(&self, key: &Arc<str>, conn_id: u64, results: Vec<pb::TaskResult>) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        match inner.workers.get_mut(key) {
            Some(w) if w.conn_id == conn_id => w.last_seen = Instant::now(),
            _ => return,
        }
        let mut ctx = Ctx::default();
        let mut leases: Vec<Arc<str>> = Vec::new();
        for r in results {
            let id = r.task_id;
            let ok = matches!(inner.tasks.get(&id), Some(t) if t.phase == Phase::Running && t.attempts == r.attempt && t.worker.as_ref() == Some(key));
            if !ok {
                debug!(task = id, attempt = r.attempt, "stale result ignored");
                continue;
            }
            // Only successful runs teach the keeper how long a task runs.
            let ran = if r.error_kind == ErrorKind::None as i32 {
                r.run_micros
            } else {
                0
            };
            self.end_run(inner, id, ran, &mut ctx);
            let Some(t) = inner.tasks.get(&id) else {
                continue;
            };
            if !leases.contains(&t.lease) {
                leases.push(t.lease.clone());
            }
            let kind = ErrorKind::try_from(r.error_kind).unwrap_or(ErrorKind::Application);
            match kind {
                ErrorKind::None => {
                    let n = out_count(&t.spec) as usize;
                    let mut outs = vec![Out::Inline(Bytes::new()); n];
                    for o in r.outputs {
                        if let Some(slot) = outs.get_mut(o.index as usize) {
                            *slot = if o.inline {
                                Out::Inline(o.data)
                            } else {
                                Out::Remote {
                                    worker: key.clone(),
                                    size: o.size,
                                }
                            };
                        }
                    }
                    self.finish_ok(inner, id, outs, r.exit_code, &mut ctx);
                }
                ErrorKind::ObjectLost if !r.lost.is_empty() => {
                    // Inputs gone: mark them lost, re-make them, run this task again.
                    for l in &r.lost {
                        if let Some(p) = inner.tasks.get_mut(&l.task_id)
                            && let Some(o) = p.outputs.get_mut(l.index as usize)
                            && matches!(o, Out::Remote { .. })
                        {
                            *o = Out::Lost;
                        }
                    }
                    let rerun = inner.tasks.get_mut(&id).map(|t| {
                        t.lost_reruns += 1;
                        t.attempts = t.attempts.saturating_sub(1);
                        t.lost_reruns <= MAX_LOST_INPUT_RERUNS + t.max_retries
                    });
                    if rerun == Some(true) {
                        if let Some(t) = inner.tasks.get_mut(&id) {
                            t.phase = Phase::Waiting;
                        }
                        self.make_ready(inner, id, &mut ctx);
                    } else {
                        self.finish_failed(
                            inner,
                            id,
                            ErrorKind::ObjectLost,
                            r.error,
                            None,
                            &mut ctx,
                        );
                    }
                }
                ErrorKind::Cancelled if t.cancel_requested => self.finish_failed(
                    inner,
                    id,
                    ErrorKind::Cancelled,
                    "cancelled".into(),
                    r.exit_code,
                    &mut ctx,
                ),
                // Nobody asked: the worker stopped it on its own (shutting down past its drain
                // timeout). That is the worker failing, not the task: retry within budget.
                ErrorKind::Cancelled => self.retry_or_fail(
                    inner,
                    id,
                    ErrorKind::WorkerDied,
                    format!("worker {key} stopped the task unasked (shutting down)"),
                    &mut ctx,
                ),
                ErrorKind::Application | ErrorKind::TimeLimit | ErrorKind::MemoryLimit => {
                    let retry = t.spec.retry_exceptions
                        && t.attempts <= t.max_retries
                        && !t.cancel_requested;
                    if retry {
                        self.metrics.task_retries.inc();
                        if let Some(t) = inner.tasks.get_mut(&id) {
                            t.phase = Phase::Waiting;
                            t.exit_code = r.exit_code;
                        }
                        self.wire_deps_and_ready(inner, id, &mut ctx);
                    } else if t.cancel_requested {
                        self.finish_failed(
                            inner,
                            id,
                            ErrorKind::Cancelled,
                            "cancelled".into(),
                            r.exit_code,
                            &mut ctx,
                        );
                    } else {
                        self.finish_failed(inner, id, kind, r.error, r.exit_code, &mut ctx);
                    }
                }
                other => self.finish_failed(inner, id, other, r.error, r.exit_code, &mut ctx),
            }
        }
        for l in leases {
            self.dispatch(inner, &l, &mut ctx);
        }
        self.flush(inner, ctx);
    }

    /// A worker's stream ended or it missed heartbeats.
    pub fn worker_lost(&self, key: &Arc<str>, conn_id: u64, reason: String) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut ctx = Ctx::default();
        self.lose_worker(inner, key, conn_id, reason, &mut ctx);
        self.flush(inner, ctx);
    }

    fn lose_worker(
        &self,
        inner: &mut Inner,
        key: &Arc<str>,
        conn_id: u64,
        reason: String,
        ctx: &mut Ctx,
    ) {
        match inner.workers.get(key) {
            Some(w) if w.conn_id == conn_id => {}
            _ => return,
        }
        let Some(w) = inner.workers.remove(key) else {
            return;
        };
        self.metrics.workers_connected.dec();
        self.metrics.workers_dead.inc();
        let mut running: Vec<u64> = w.running.iter().copied().collect();
        running.sort_unstable();
        warn!(worker = %key, lease = ?w.lease, running = running.len(), reason = %reason, "worker dead");
        ctx.batch.evidence.push(Evidence {
            worker: key.to_string(),
            provider: w.provider.clone(),
            lease: w.lease.as_deref().unwrap_or("").to_string(),
            reason: reason.clone(),
            at_unix_ms: now_ms(),
            tasks: running.clone(),
            kind: "worker_died".into(),
            ..Default::default()
        });
        inner.pulls.retain(|_, (wk, _)| wk != key);
        // Objects it held are lost (re-made on demand).
        for t in inner.held_by.remove(key).unwrap_or_default() {
            if let Some(task) = inner.tasks.get_mut(&t) {
                for o in task.outputs.iter_mut() {
                    if matches!(o, Out::Remote { worker, .. } if worker == key) {
                        *o = Out::Lost;
                    }
                }
            }
        }
        if let (Some(lease), Some(idx)) = (w.lease.clone(), w.idx) {
            let failed = match inner.clusters.get_mut(&lease) {
                Some(c) => {
                    c.members.retain(|m| m != key);
                    c.sched.remove_worker(idx)
                }
                None => Vec::new(),
            };
            for (t, msg) in failed {
                self.finish_failed(inner, t, ErrorKind::Unschedulable, msg, None, ctx);
            }
            if let Some(c) = inner.clusters.get_mut(&lease) {
                c.lanes.retain(|_, l| l.worker != *key);
            }
            for t in running {
                if let Some(task) = inner.tasks.get_mut(&t) {
                    task.grant = None;
                    task.lane = 0;
                }
                self.retry_or_fail(
                    inner,
                    t,
                    ErrorKind::WorkerDied,
                    format!("worker {key} died: {reason}"),
                    ctx,
                );
            }
            // Take an idle worker of the provider in its place, if any.
            let idle: Vec<Arc<str>> = inner
                .workers
                .iter()
                .filter(|(_, x)| x.lease.is_none() && x.provider == w.provider && !x.draining)
                .map(|(k, _)| k.clone())
                .collect();
            for k in idle {
                self.try_attach(inner, &k, &lease, ctx);
            }
            self.cluster_changed(inner, &lease, ctx);
            self.dispatch(inner, &lease, ctx);
        }
    }

    /// Workers silent for longer than `dead_after`.
    pub fn check_heartbeats(&self) -> usize {
        let now = Instant::now();
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let dead: Vec<(Arc<str>, u64, Duration)> = inner
            .workers
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_seen) > self.cfg.dead_after)
            .map(|(k, w)| (k.clone(), w.conn_id, now.duration_since(w.last_seen)))
            .collect();
        let n = dead.len();
        let mut ctx = Ctx::default();
        for (k, c, d) in dead {
            self.lose_worker(
                inner,
                &k,
                c,
                format!("missed heartbeats for {:.1}s", d.as_secs_f64()),
                &mut ctx,
            );
        }
        self.flush(inner, ctx);
        n
    }

    /// An object reply from a worker.
    pub fn on_object_reply(&self, key: &Arc<str>, reply: pb::ObjectReply) {
        let mut g = self.inner.lock();
        if let Some((wk, tx)) = g.pulls.remove(&reply.request_id)
            && wk == *key
        {
            let _ = tx.send(reply.found.then_some(reply.data));
        }
    }

    fn start_pull(
        &self,
        inner: &mut Inner,
        worker: &Arc<str>,
        r: pb::ObjectRef,
    ) -> Option<oneshot::Receiver<Option<Bytes>>> {
        let conn = inner.workers.get(worker)?;
        let id = inner.next_pull;
        inner.next_pull += 1;
        let (tx, rx) = oneshot::channel();
        conn.tx
            .send(pb::KeeperMessage {
                msg: Some(pb::keeper_message::Msg::Pull(pb::ObjectPull {
                    request_id: id,
                    object: Some(r),
                })),
            })
            .ok()?;
        inner.pulls.insert(id, (worker.clone(), tx));
        Some(rx)
    }

    /// Resolve an object's bytes: inline, pulled from its worker, or re-made (lineage) and
    /// waited for up to `timeout`. `lease` restricts access (None = any lease, for workers).
    pub async fn object(
        &self,
        lease: Option<&Arc<str>>,
        r: pb::ObjectRef,
        timeout: Duration,
    ) -> Result<Bytes, KeeperError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for _ in 0..8 {
            enum Next {
                Data(Bytes),
                Pull(Arc<str>, oneshot::Receiver<Option<Bytes>>),
                Wait(oneshot::Receiver<()>),
                Lost,
            }
            let next = {
                let mut g = self.inner.lock();
                let inner = &mut *g;
                let t = inner
                    .tasks
                    .get(&r.task_id)
                    .filter(|t| lease.is_none_or(|l| *l == t.lease))
                    .ok_or_else(|| {
                        KeeperError::NotFound(format!("object {}:{}", r.task_id, r.index))
                    })?;
                if r.index >= out_count(&t.spec) {
                    return Err(KeeperError::NotFound(format!(
                        "object {}:{}",
                        r.task_id, r.index
                    )));
                }
                match (t.visible_state(), t.outputs.get(r.index as usize).cloned()) {
                    (TaskState::Failed | TaskState::Cancelled, _) => {
                        return Err(KeeperError::NotFound(format!(
                            "task {} did not finish: {}",
                            r.task_id, t.error
                        )));
                    }
                    (TaskState::Finished, Some(Out::Inline(b))) if !t.reconstructing => {
                        Next::Data(b)
                    }
                    (TaskState::Finished, Some(Out::Remote { worker, .. }))
                        if !t.reconstructing =>
                    {
                        match self.start_pull(inner, &worker, r) {
                            Some(rx) => Next::Pull(worker, rx),
                            None => Next::Lost,
                        }
                    }
                    (TaskState::Finished, Some(Out::Lost) | None) if !t.reconstructing => {
                        Next::Lost
                    }
                    _ => {
                        let (tx, rx) = oneshot::channel();
                        if let Some(t) = inner.tasks.get_mut(&r.task_id) {
                            t.waiters.push(Waiter::One(tx));
                        }
                        Next::Wait(rx)
                    }
                }
            };
            match next {
                Next::Data(b) => return Ok(b),
                Next::Pull(worker, rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(Some(b))) => return Ok(b),
                    Ok(_) => self.mark_lost(&r, &worker),
                    Err(_) => {
                        return Err(KeeperError::Exhausted("timed out fetching object".into()));
                    }
                },
                Next::Lost => {
                    let mut g = self.inner.lock();
                    let inner = &mut *g;
                    if let Some(t) = inner.tasks.get_mut(&r.task_id) {
                        for o in t.outputs.iter_mut() {
                            if matches!(o, Out::Remote { .. }) {
                                // keep others; only the requested one is known lost
                            }
                        }
                        if let Some(o) = t.outputs.get_mut(r.index as usize) {
                            *o = Out::Lost;
                        }
                    }
                    let mut ctx = Ctx::default();
                    self.reconstruct(inner, r.task_id, &mut ctx);
                    let waiting = inner
                        .tasks
                        .get(&r.task_id)
                        .is_some_and(|t| t.reconstructing);
                    self.flush(inner, ctx);
                    if !waiting {
                        return Err(KeeperError::NotFound(format!(
                            "object {}:{} lost and cannot be re-made",
                            r.task_id, r.index
                        )));
                    }
                }
                Next::Wait(rx) => {
                    if timeout.is_zero() || tokio::time::timeout_at(deadline, rx).await.is_err() {
                        return Err(KeeperError::Exhausted("not ready".into()));
                    }
                }
            }
        }
        Err(KeeperError::NotFound(format!(
            "object {}:{} could not be fetched",
            r.task_id, r.index
        )))
    }

    fn mark_lost(&self, r: &pb::ObjectRef, worker: &Arc<str>) {
        let mut g = self.inner.lock();
        if let Some(t) = g.tasks.get_mut(&r.task_id)
            && let Some(o) = t.outputs.get_mut(r.index as usize)
            && matches!(o, Out::Remote { worker: w, .. } if w == worker)
        {
            *o = Out::Lost;
        }
    }

    // ---------------------------------------------------------------- client side

    /// Statuses of tasks of a lease (unknown ids → NotFound).
    pub fn statuses(
        &self,
        lease: &Arc<str>,
        ids: &[u64],
    ) -> Result<Vec<pb::TaskStatus>, KeeperError> {
        let g = self.inner.lock();
        ids.iter()
            .map(|id| match g.tasks.get(id) {
                Some(t) if t.lease == *lease => Ok(self.status_of(*id, t)),
                _ => Err(KeeperError::NotFound(format!("task {id} (never submitted to this lease, or finished and forgotten after task_retention)"))),
            })
            .collect()
    }

    /// List tasks of a lease.
    pub fn list(
        &self,
        lease: &Arc<str>,
        state: TaskState,
        after: u64,
        limit: usize,
    ) -> Vec<pb::TaskStatus> {
        let g = self.inner.lock();
        let mut ids: Vec<u64> = g
            .tasks
            .iter()
            .filter(|(id, t)| {
                **id > after
                    && t.lease == *lease
                    && (state == TaskState::Unspecified || t.visible_state() == state)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        ids.iter()
            .filter_map(|id| g.tasks.get(id).map(|t| self.status_of(*id, t)))
            .collect()
    }

    /// Cancel tasks of a lease; true for each task that was not already done.
    pub fn cancel(&self, lease: &Arc<str>, ids: &[u64]) -> Result<Vec<bool>, KeeperError> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        for id in ids {
            if inner.tasks.get(id).is_none_or(|t| t.lease != *lease) {
                return Err(KeeperError::NotFound(format!(
                    "task {id} (never submitted to this lease, or finished and forgotten after task_retention)"
                )));
            }
        }
        let mut ctx = Ctx::default();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let Some(t) = inner.tasks.get_mut(&id) else {
                continue;
            };
            match t.phase {
                Phase::Done => out.push(false),
                Phase::Waiting | Phase::Queued => {
                    t.cancel_requested = true;
                    self.finish_failed(
                        inner,
                        id,
                        ErrorKind::Cancelled,
                        "cancelled by the user".into(),
                        None,
                        &mut ctx,
                    );
                    out.push(true);
                }
                Phase::Running => {
                    t.cancel_requested = true;
                    let attempt = t.attempts;
                    if let Some(w) = t.worker.clone().and_then(|w| inner.workers.get(&w)) {
                        let _ = w.tx.send(pb::KeeperMessage {
                            msg: Some(pb::keeper_message::Msg::Cancel(pb::CancelTask {
                                task_id: id,
                                attempt,
                            })),
                        });
                    }
                    out.push(true);
                }
            }
        }
        self.flush(inner, ctx);
        Ok(out)
    }

    /// Wait until a task is visibly terminal (or `timeout`); returns its status.
    pub async fn wait(
        &self,
        lease: &Arc<str>,
        id: u64,
        timeout: Duration,
    ) -> Result<pb::TaskStatus, KeeperError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let rx = {
                let mut g = self.inner.lock();
                let t = g
                    .tasks
                    .get_mut(&id)
                    .filter(|t| t.lease == *lease)
                    .ok_or_else(|| KeeperError::NotFound(format!("task {id} (never submitted to this lease, or finished and forgotten after task_retention)")))?;
                // `durable` is set once the terminal state is committed (and stays set while a
                // lost output is being re-made).
                if t.durable || timeout.is_zero() {
                    return Ok(self.status_of(id, t));
                }
                let (tx, rx) = oneshot::channel();
                t.waiters.push(Waiter::One(tx));
                rx
            };
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                let g = self.inner.lock();
                return g
                    .tasks
                    .get(&id)
                    .map(|t| self.status_of(id, t))
                    .ok_or_else(|| KeeperError::NotFound(format!("task {id} (never submitted to this lease, or finished and forgotten after task_retention)")));
            }
        }
    }

    /// Wait until every task of `ids` is durably terminal or the timeout passes, sleeping once;
    /// then each task's status and, for a finished one, its inline output 0.
    pub async fn wait_all(
        &self,
        lease: &Arc<str>,
        ids: &[u64],
        timeout: Duration,
    ) -> Result<Vec<pb::TaskOutcome>, KeeperError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = |id: u64, t: &Task| {
            let status = self.status_of(id, t);
            let finished = status.state == TaskState::Finished as i32;
            let complete = finished
                || status.state == TaskState::Failed as i32
                || status.state == TaskState::Cancelled as i32;
            let data = match t.outputs.first() {
                Some(Out::Inline(b)) if finished => b.clone(),
                _ => Bytes::new(),
            };
            pb::TaskOutcome {
                status: Some(status),
                data,
                complete,
            }
        };
        // Tasks already durably terminal are answered from this first look (retention cannot
        // take them away meanwhile); the others get a waiter, which also pins them.
        let mut out: Vec<Option<pb::TaskOutcome>> = Vec::with_capacity(ids.len());
        let rx = {
            let mut g = self.inner.lock();
            if let Some(id) = ids
                .iter()
                .find(|id| g.tasks.get(id).is_none_or(|t| t.lease != *lease))
            {
                return Err(KeeperError::NotFound(format!("task {id}")));
            }
            let (tx, rx) = oneshot::channel();
            let group = Arc::new(GroupWait {
                left: std::sync::atomic::AtomicUsize::new(0),
                tx: Mutex::new(Some(tx)),
            });
            let mut left = 0;
            for &id in ids {
                let Some(t) = g.tasks.get_mut(&id) else {
                    out.push(None);
                    continue;
                };
                if t.durable || timeout.is_zero() {
                    out.push(Some(outcome(id, t)));
                } else {
                    left += 1;
                    t.waiters.push(Waiter::Group(group.clone()));
                    out.push(None);
                }
            }
            // Waiters only fire under the core lock, which is held: no fire can come first.
            group.left.store(left, std::sync::atomic::Ordering::Release);
            (left > 0).then_some(rx)
        };
        if let Some(rx) = rx {
            let _ = tokio::time::timeout_at(deadline, rx).await;
        }
        let g = self.inner.lock();
        ids.iter()
            .zip(out)
            .map(|(&id, o)| match o {
                Some(o) => Ok(o),
                None => g.tasks.get(&id).map(|t| outcome(id, t)).ok_or_else(|| {
                    KeeperError::NotFound(format!(
                        "task {id} (never submitted to this lease, or finished and forgotten after task_retention)"
                    ))
                }),
            })
            .collect()
    }

    /// Wait for a task and return output `index` when it finished.
    pub async fn get(
        &self,
        lease: &Arc<str>,
        r: pb::ObjectRef,
        timeout: Duration,
    ) -> Result<GetOutcome, KeeperError> {
        let st = self.wait(lease, r.task_id, timeout).await?;
        if st.state != TaskState::Finished as i32 {
            let terminal =
                st.state == TaskState::Failed as i32 || st.state == TaskState::Cancelled as i32;
            return Ok(if terminal {
                GetOutcome::Ready(st, Bytes::new())
            } else {
                GetOutcome::NotReady(st)
            });
        }
        let data = self
            .object(Some(lease), r, timeout.max(Duration::from_secs(10)))
            .await?;
        Ok(GetOutcome::Ready(st, data))
    }

    /// Store commit sink (`immediate` durability): terminal states become visible.
    pub fn on_commit(&self, ids: Vec<u64>) {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut events = Vec::new();
        self.mark_visible(inner, ids, &mut events);
        for e in events {
            let _ = self.events.send(Arc::new(e));
        }
    }

    /// Forget finished tasks older than `keep` (Ray frees an object once nothing refers to it;
    /// here a client's reference is its task id, so the bound is time): their records leave
    /// memory and the database, and workers drop the objects they hold for them. A task that
    /// a waiting task still depends on, or that is being re-made, is kept. Returns how many
    /// were removed.
    pub fn collect_garbage(&self, keep: Duration) -> usize {
        let cutoff = now_ms().saturating_sub(keep.as_millis() as u64);
        let mut g = self.inner.lock();
        let inner = &mut *g;
        // Inputs stay while a task may still need them: unfinished tasks, and finished ones
        // whose output lives on a worker (if it is lost, the task is re-made from them).
        let needed: HashSet<u64> = inner
            .tasks
            .values()
            .filter(|t| {
                t.phase != Phase::Done
                    || t.reconstructing
                    || t.outputs.iter().any(|o| matches!(o, Out::Remote { .. }))
            })
            .flat_map(|t| t.deps.iter().copied())
            .collect();
        // The newest task is never forgotten: after a restart, ids continue above it, so an
        // id once given out never names another task.
        let newest = inner.next_id.saturating_sub(1);
        let old: Vec<u64> = inner
            .tasks
            .iter()
            .filter(|(id, t)| {
                t.phase == Phase::Done
                    && t.durable
                    && !t.reconstructing
                    && t.waiters.is_empty()
                    && t.finished_ms != 0
                    && t.finished_ms <= cutoff
                    && !needed.contains(id)
                    && **id != newest
                    && !inner.dependents.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect();
        if old.is_empty() {
            return 0;
        }
        let mut drops: HashMap<Arc<str>, Vec<pb::ObjectRef>> = HashMap::new();
        for id in &old {
            let Some(t) = inner.tasks.remove(id) else {
                continue;
            };
            for (i, o) in t.outputs.iter().enumerate() {
                if let Out::Remote { worker, .. } = o {
                    drops
                        .entry(worker.clone())
                        .or_default()
                        .push(pb::ObjectRef {
                            task_id: *id,
                            index: i as u32,
                        });
                    if let Some(set) = inner.held_by.get_mut(worker) {
                        set.remove(id);
                    }
                }
            }
        }
        for (w, objects) in drops {
            if let Some(conn) = inner.workers.get(&w) {
                let _ = conn.tx.send(pb::KeeperMessage {
                    msg: Some(pb::keeper_message::Msg::Drop(pb::DropObjects { objects })),
                });
            }
        }
        let n = old.len();
        self.metrics.tasks_forgotten.inc_by(n as u64);
        debug!(tasks = n, "retention: forgot finished tasks");
        let batch = Batch {
            deleted: old,
            ..Default::default()
        };
        if self.store.send(batch) == Sent::Refused {
            warn!("store is closed; retention not persisted");
        }
        n
    }

    /// Stop: refuse new work, end worker streams, flush the store.
    pub fn shutdown(&self) {
        {
            let mut g = self.inner.lock();
            g.shutting_down = true;
            g.workers.clear();
            g.pulls.clear();
        }
        self.store.shutdown();
    }

    /// Number of connected workers.
    pub fn connected_workers(&self) -> usize {
        self.inner.lock().workers.len()
    }

    /// Leases whose cluster has at least one member.
    pub fn cluster_leases(&self) -> Vec<Arc<str>> {
        let g = self.inner.lock();
        let mut v: Vec<Arc<str>> = g
            .clusters
            .iter()
            .filter(|(_, c)| !c.members.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort_unstable();
        v
    }

    /// Record evidence (a benchmark-proof verdict) through the group commit, like a worker's
    /// death; the receiver completes when it is durable.
    pub fn record_evidence(&self, ev: Evidence) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut ctx = Ctx::default();
        ctx.batch.evidence.push(ev);
        ctx.batch.ack = Some(tx);
        self.flush(inner, ctx);
        rx
    }
}

/// Size of the keeper's in-memory task record (without its spec and outputs), for the
/// memory-per-queued-task figure in BENCHMARKS.md.
pub const fn task_struct_bytes() -> usize {
    std::mem::size_of::<Task>()
}

fn pg_strategy(s: pb::PlacementStrategy) -> PgStrategy {
    match s {
        pb::PlacementStrategy::Pack => PgStrategy::Pack,
        pb::PlacementStrategy::Spread => PgStrategy::Spread,
        pb::PlacementStrategy::StrictPack => PgStrategy::StrictPack,
        pb::PlacementStrategy::StrictSpread => PgStrategy::StrictSpread,
    }
}

fn res_of(b: &pb::Resources) -> Res {
    Res {
        milli_cpus: b.milli_cpus,
        gpus: b.gpus,
        memory: b.memory_bytes,
    }
}

fn pg_info(id: u64, i: &crate::sched::GroupInfo) -> pb::PlacementGroupInfo {
    pb::PlacementGroupInfo {
        placement_group_id: id,
        strategy: match i.strategy {
            PgStrategy::Pack => pb::PlacementStrategy::Pack,
            PgStrategy::Spread => pb::PlacementStrategy::Spread,
            PgStrategy::StrictPack => pb::PlacementStrategy::StrictPack,
            PgStrategy::StrictSpread => pb::PlacementStrategy::StrictSpread,
        } as i32,
        state: if i.created { "created" } else { "pending" }.to_string(),
        bundle_workers: i
            .bundle_workers
            .iter()
            .map(|w| w.as_deref().unwrap_or("").to_string())
            .collect(),
    }
}
