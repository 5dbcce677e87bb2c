//! The coordinator: one lock over the keeper's dispatch state and the public API that the
//! gRPC services and the background loops call.
//!
//! ```text
//!            Core (this file: lock, public API, sending side effects)
//!              │ Flow (flow.rs: one operation walked across both managers)
//!        ┌─────┴───────────────┐
//!   TaskTable (tasks.rs)   Clusters (cluster.rs) ── Scheduler per lease (sched.rs)
//!   tasks, deps, retries,  workers, clusters, placement groups,
//!   lineage, objects       held resources, lanes, pulls
//! ```
//!
//! Everything that must stay consistent lives in [`Inner`] behind one `parking_lot::Mutex`.
//! Critical sections are short and never await: sends go to unbounded channels (worker
//! streams, the store thread, watch broadcasts). This keeps the hot path lock-then-send with
//! no task hops. Sessions and challenges are the gRPC layer's ([`crate::auth::Gate`]); proof
//! routing is [`crate::proof_routes`]; the chain side reaches the core only through the
//! [`crate::directory`] traits.
//!
//! Exactly-once completion as seen by clients: a task's terminal state (and its result) is
//! shown to clients only after the store thread reports it durable (the commit sink calls
//! [`Core::on_commit`]). After a crash, accepted tasks that were not durably terminal run again;
//! a client can never have seen them complete. A late result from an older attempt (a worker
//! presumed dead, a retry already running) is ignored by attempt number.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use pb::TaskState;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::cluster::{pg_strategy, res_of};
use crate::directory::{LeaseDirectory, LeaseInfo, WorkerRegistry};
use crate::error::KeeperError;
use crate::flow::{Ctx, Env, Flow};
use crate::metrics::Metrics;
use crate::proof_routes::ProofRoutes;
use crate::store::{Batch, CommitSink, Evidence, GroupRecord, Loaded, Sent, Store};
use crate::tasks::{Out, now_ms, out_count, validate_batch};

pub use crate::flow::{Event, Inner};
pub use crate::tasks::{MAX_BATCH, task_struct_bytes};

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
    /// Where proof messages from workers go (the keeper's running benchmark proofs).
    pub proofs: ProofRoutes,
    /// When each worker key was last heard from (a slash for silence rests on it).
    pub liveness: Arc<crate::liveness::Liveness>,
    /// Live logs of the tasks that stream them (jobs).
    pub logs: crate::logs::Logs,
    /// Checkpoints the chain side recorded, by lease and sequence (served to auditors; the
    /// store keeps them across restarts). Beside the state lock, not under it.
    checkpoints: Mutex<BTreeMap<(String, u64), pb::CheckpointTranscript>>,
}

/// Result of a `get`.
pub enum GetOutcome {
    /// The task is terminal; `data` is the output when it finished.
    Ready(pb::TaskStatus, Bytes),
    /// Not terminal within the timeout.
    NotReady(pb::TaskStatus),
}

/// How a pass of [`Core::object`] goes on.
enum Next {
    Data(Bytes),
    Pull(Arc<str>, oneshot::Receiver<Option<Bytes>>),
    Wait(oneshot::Receiver<()>),
    Lost,
}

impl Core {
    /// Build the core from what the store loaded, and register its commit sink.
    pub fn new(
        cfg: CoreConfig,
        store: Store,
        mut loaded: Loaded,
        sink_slot: &Arc<Mutex<Option<CommitSink>>>,
        leases: Arc<dyn LeaseDirectory>,
        registry: Arc<dyn WorkerRegistry>,
    ) -> Arc<Core> {
        let (events, _) = broadcast::channel(1 << 16);
        let checkpoints = std::mem::take(&mut loaded.checkpoints)
            .into_iter()
            .map(|c| ((c.lease_id.clone(), c.sequence), c))
            .collect();
        let dead_after = cfg.dead_after;
        let core = Arc::new(Core {
            inner: Mutex::new(Inner::default()),
            store,
            cfg,
            metrics: Metrics::new(),
            leases,
            registry,
            events,
            proofs: ProofRoutes::default(),
            liveness: Arc::new(crate::liveness::Liveness::new(dead_after)),
            logs: crate::logs::Logs::default(),
            checkpoints: Mutex::new(checkpoints),
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

    /// Runs `f` as one operation on the locked state, then sends its side effects.
    fn with<R>(&self, inner: &mut Inner, f: impl FnOnce(&mut Flow<'_>) -> R) -> R {
        let env = Env {
            default_max_retries: self.cfg.default_max_retries,
            pipeline_depth: self.cfg.pipeline_depth,
            pipeline_below_us: self.cfg.pipeline_below.as_secs_f64() * 1e6,
            metrics: &self.metrics,
            proofs: &self.proofs,
            leases: &*self.leases,
            watched: self.events.receiver_count() > 0,
        };
        let mut flow = Flow {
            s: &mut *inner,
            ctx: Ctx::default(),
            env,
        };
        let r = f(&mut flow);
        let ctx = std::mem::take(&mut flow.ctx);
        self.flush(inner, ctx);
        r
    }

    /// Locks the state and runs `f` as one operation.
    fn op<R>(&self, f: impl FnOnce(&mut Flow<'_>) -> R) -> R {
        let mut g = self.inner.lock();
        self.with(&mut g, f)
    }

    fn recover(&self, loaded: Loaded) {
        let mut g = self.inner.lock();
        let mut pending = Vec::new();
        for rec in loaded.tasks {
            let id = rec.id;
            if g.tasks.recover(rec, self.cfg.default_max_retries) {
                pending.push(id);
            }
        }
        pending.sort_unstable();
        let n = pending.len();
        self.with(&mut g, |f| {
            // Placement groups first: recovered tasks may target them.
            for pg in loaded.groups {
                let lease: Arc<str> = pg.lease.as_str().into();
                if !f.ensure_cluster(&lease) {
                    warn!(lease = %lease, pg = pg.id, "placement group of a lease that no longer exists: dropped");
                    continue;
                }
                let strategy = pg_strategy(
                    pb::PlacementStrategy::try_from(pg.strategy)
                        .unwrap_or(pb::PlacementStrategy::Pack),
                );
                let res = pg.bundles.iter().map(res_of).collect();
                if let Some(c) = f.s.cl.clusters.get_mut(&lease) {
                    c.sched.restore_group(pg.id, res, strategy);
                    if pg.removed {
                        // Kept as a tombstone: its id is never handed out again.
                        c.sched.remove_group(pg.id);
                    }
                }
            }
            for id in pending {
                f.wire_deps_and_ready(id);
            }
        });
        if n > 0 {
            info!(
                tasks = n,
                "recovered unfinished tasks; they run again as workers join"
            );
        }
    }

    /// Sends an operation's side effects: assignments, the store batch, watch events.
    fn flush(&self, inner: &mut Inner, ctx: Ctx) {
        let Ctx {
            assigns,
            batch,
            mut events,
        } = ctx;
        for (w, tasks) in assigns {
            let msg = pb::keeper_message::Msg::Assign(pb::Assignments { tasks });
            inner.cl.send(&w, msg);
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
        events.extend(
            inner
                .tasks
                .mark_visible(ids, watched)
                .into_iter()
                .map(|(lease, status)| Event { lease, status }),
        );
    }

    /// Subscribe to task events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Lease directory.
    pub fn lease_info(&self, lease: &str) -> Option<LeaseInfo> {
        self.leases.lease(lease)
    }

    /// Why a lease this keeper served has ended, if it has.
    pub fn lease_ended(&self, lease: &str) -> Option<String> {
        self.inner.lock().cl.ended.get(lease).cloned()
    }

    /// Worker registry check.
    pub fn worker_allowed(&self, provider: &str, key: &[u8; 32]) -> bool {
        self.registry.is_allowed(provider, key)
    }

    // ---------------------------------------------------------------- clusters

    /// The cluster of a lease.
    pub fn cluster(&self, lease: &Arc<str>) -> Result<pb::ClusterInfo, KeeperError> {
        self.op(|f| {
            if !f.ensure_cluster(lease) {
                return Err(f.lease_error(lease));
            }
            f.s.cl
                .info(lease)
                .ok_or_else(|| KeeperError::NotFound(format!("lease {lease}")))
        })
    }

    /// Remove placement group `pg` of a lease's cluster (Ray's `remove_placement_group`): its
    /// unfinished tasks are cancelled (running ones killed), its reservations freed, and the
    /// removal persisted with the cancellations. Returns the cancelled tasks.
    pub fn remove_placement_group(
        &self,
        lease: &Arc<str>,
        pg: u64,
    ) -> Result<Vec<u64>, KeeperError> {
        self.op(|f| {
            if !f.ensure_cluster(lease) {
                return Err(f.lease_error(lease));
            }
            let known =
                f.s.cl
                    .clusters
                    .get(lease)
                    .is_some_and(|c| c.sched.group_info(pg).is_some());
            if !known {
                return Err(KeeperError::NotFound(format!("placement group {pg}")));
            }
            let in_group: Vec<u64> =
                f.s.tasks
                    .unfinished_of(lease)
                    .into_iter()
                    .filter(|id| {
                        f.s.tasks.tasks.get(id).is_some_and(|t| {
                            matches!(
                                t.spec.strategy.as_ref().and_then(|s| s.kind.as_ref()),
                                Some(pb::scheduling_strategy::Kind::PlacementGroup(p))
                                    if p.placement_group_id == pg
                            )
                        })
                    })
                    .collect();
            let cancelled = in_group.into_iter().filter(|id| f.cancel(*id)).collect();
            f.s.cl.remove_group(lease, pg)?;
            f.ctx.batch.groups.push(GroupRecord {
                lease: lease.to_string(),
                id: pg,
                removed: true,
                ..Default::default()
            });
            f.dispatch(lease);
            Ok(cancelled)
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
        if bundles.is_empty() || bundles.len() > 1024 {
            return Err(KeeperError::Invalid(
                "a placement group needs 1..=1024 bundles".into(),
            ));
        }
        let (id, info) = self.op(|f| {
            if !f.ensure_cluster(lease) {
                return Err(f.lease_error(lease));
            }
            f.s.cl.create_group(lease, bundles, strategy)
        })?;
        let (tx, rx) = oneshot::channel();
        let batch = Batch {
            groups: vec![GroupRecord {
                lease: lease.to_string(),
                id,
                bundles: bundles.to_vec(),
                strategy: strategy as i32,
                removed: false,
            }],
            ack: Some(tx),
            ..Default::default()
        };
        // A refused batch drops the sender: the caller sees "could not persist".
        let _ = self.store.send(batch);
        Self::durable(rx).await?;
        Ok(info)
    }

    /// Leases whose cluster has at least one member.
    pub fn cluster_leases(&self) -> Vec<Arc<str>> {
        self.inner.lock().cl.leases()
    }

    /// Number of connected workers.
    pub fn connected_workers(&self) -> usize {
        self.inner.lock().cl.workers.len()
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
    #[allow(clippy::type_complexity)]
    pub fn submit_nowait(
        &self,
        lease: &Arc<str>,
        specs: Vec<pb::TaskSpec>,
        defer_accept: bool,
    ) -> Result<(Vec<u64>, Option<oneshot::Receiver<bool>>), KeeperError> {
        validate_batch(&specs)?;
        let mut g = self.inner.lock();
        if g.shutting_down {
            return Err(KeeperError::ShuttingDown);
        }
        if self.store.is_closed() {
            return Err(KeeperError::Db(
                "the keeper's write-ahead log failed; it accepts no work until restarted (see its log)"
                    .into(),
            ));
        }
        self.with(&mut g, |f| {
            if !f.ensure_cluster(lease) {
                return Err(f.lease_error(lease));
            }
            f.s.tasks.check_refs(lease, &specs)?;
            let n = specs.len() as u64;
            let ids = f.s.tasks.accept(
                lease,
                specs,
                f.env.default_max_retries,
                defer_accept,
                &mut f.ctx.batch,
            );
            for &id in &ids {
                f.wire_deps_and_ready(id);
                f.event(id);
            }
            let ack = (!defer_accept).then(|| {
                let (tx, rx) = oneshot::channel();
                f.ctx.batch.ack = Some(tx);
                rx
            });
            f.env.metrics.tasks_submitted.inc_by(n);
            Ok((ids, ack))
        })
    }

    /// Persist the acceptance of deferred tasks that are not durably terminal yet. Returns
    /// None when there is nothing to wait for.
    pub fn make_durable(&self, ids: &[u64]) -> Option<oneshot::Receiver<bool>> {
        let mut g = self.inner.lock();
        let mut batch = Batch::default();
        if !g.tasks.deferred_records(ids, &mut batch) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        batch.ack = Some(tx);
        // Dropped sender (store closed) reads as "not persisted".
        let _ = self.store.send(batch);
        Some(rx)
    }

    // ---------------------------------------------------------------- worker side

    /// Admit a verified worker; returns its connection id, session secret and receiver of
    /// keeper messages.
    #[allow(clippy::type_complexity)]
    pub fn register_worker(
        &self,
        key: Arc<str>,
        reg: pb::Register,
    ) -> Result<(u64, [u8; 16], mpsc::UnboundedReceiver<pb::KeeperMessage>), KeeperError> {
        let session = crate::auth::random_bytes::<16>()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = self.inner.lock();
        if g.shutting_down {
            return Err(KeeperError::ShuttingDown);
        }
        let _ = tx.send(pb::KeeperMessage {
            msg: Some(pb::keeper_message::Msg::Registered(pb::Registered {
                worker_id: key.to_string(),
                session: Bytes::copy_from_slice(&session),
                heartbeat_interval_ms: self.cfg.heartbeat_interval.as_millis() as u64,
                inline_limit_bytes: self.cfg.inline_limit,
            })),
        });
        let conn_id = self.with(&mut g, |f| f.register_worker(&key, reg, tx, session));
        Ok((conn_id, session, rx))
    }

    /// Note that a worker is alive.
    pub fn touch(&self, key: &Arc<str>, conn_id: u64) {
        if let Some(w) = self.inner.lock().cl.conn_mut(key, conn_id) {
            w.last_seen = std::time::Instant::now();
        }
    }

    /// Worker says it is draining.
    pub fn worker_draining(&self, key: &Arc<str>, conn_id: u64) {
        if self.inner.lock().cl.draining(key, conn_id) {
            info!(worker = %key, "worker draining");
        }
    }

    /// Check a worker's FetchObject session.
    pub fn worker_session_ok(&self, session: &[u8]) -> bool {
        self.inner.lock().cl.session_ok(session)
    }

    /// Results from a worker.
    pub fn on_results(&self, key: &Arc<str>, conn_id: u64, results: Vec<pb::TaskResult>) {
        let mut g = self.inner.lock();
        match g.cl.conn_mut(key, conn_id) {
            Some(w) => w.last_seen = std::time::Instant::now(),
            None => return,
        }
        self.with(&mut g, |f| {
            let mut leases: Vec<Arc<str>> = Vec::new();
            for r in results {
                if let Some(l) = f.on_result(key, r)
                    && !leases.contains(&l)
                {
                    leases.push(l);
                }
            }
            for l in leases {
                f.dispatch(&l);
            }
        });
    }

    /// A worker says what a task it runs is doing before it starts (building its runtime env):
    /// the task's status shows it and watchers hear it. Stale attempts are ignored.
    pub fn on_progress(&self, key: &Arc<str>, conn_id: u64, p: pb::TaskProgress) {
        let mut g = self.inner.lock();
        match g.cl.conn_mut(key, conn_id) {
            Some(w) => w.last_seen = std::time::Instant::now(),
            None => return,
        }
        self.with(&mut g, |f| f.on_progress(key, p));
    }

    /// Output of a task that streams its logs, from the worker running its current attempt
    /// (a worker cannot write into another's tasks).
    pub fn on_log(&self, key: &Arc<str>, conn_id: u64, l: pb::TaskLog) {
        {
            let mut g = self.inner.lock();
            match g.cl.conn_mut(key, conn_id) {
                Some(w) => w.last_seen = std::time::Instant::now(),
                None => return,
            }
            if !g.tasks.runs_on(l.task_id, l.attempt, key) {
                return;
            }
        }
        self.logs.append(l.task_id, l.attempt, l.stream, l.data);
    }

    /// A worker's stream ended or it missed heartbeats.
    pub fn worker_lost(&self, key: &Arc<str>, conn_id: u64, reason: String) {
        self.op(|f| f.lose_worker(key, conn_id, reason));
    }

    /// Workers silent for longer than `dead_after`.
    pub fn check_heartbeats(&self) -> usize {
        self.op(|f| {
            let dead = f.s.cl.silent(self.cfg.dead_after);
            let n = dead.len();
            for (k, c, d) in dead {
                let reason = format!("missed heartbeats for {:.1}s", d.as_secs_f64());
                f.lose_worker(&k, c, reason);
            }
            n
        })
    }

    /// An object reply from a worker.
    pub fn on_object_reply(&self, key: &Arc<str>, reply: pb::ObjectReply) {
        self.inner.lock().cl.pull_reply(key, reply);
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
        let not_found = || KeeperError::NotFound(format!("object {}:{}", r.task_id, r.index));
        for _ in 0..8 {
            let next = {
                let mut g = self.inner.lock();
                let inner = &mut *g;
                let t = inner
                    .tasks
                    .tasks
                    .get_mut(&r.task_id)
                    .filter(|t| lease.is_none_or(|l| *l == t.lease))
                    .ok_or_else(not_found)?;
                if r.index >= out_count(&t.spec) {
                    return Err(not_found());
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
                        match inner.cl.pull(&worker, r) {
                            Some(rx) => Next::Pull(worker, rx),
                            None => Next::Lost,
                        }
                    }
                    (TaskState::Finished, Some(Out::Lost) | None) if !t.reconstructing => {
                        Next::Lost
                    }
                    _ => {
                        let (tx, rx) = oneshot::channel();
                        t.waiters.push(crate::tasks::Waiter::One(tx));
                        Next::Wait(rx)
                    }
                }
            };
            match next {
                Next::Data(b) => return Ok(b),
                Next::Pull(worker, rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(Some(b))) => return Ok(b),
                    Ok(_) => self.inner.lock().tasks.mark_output_lost(&r, Some(&worker)),
                    Err(_) => {
                        return Err(KeeperError::Exhausted("timed out fetching object".into()));
                    }
                },
                Next::Lost => {
                    let waiting = self.op(|f| {
                        f.s.tasks.mark_output_lost(&r, None);
                        f.reconstruct(r.task_id);
                        f.s.tasks
                            .tasks
                            .get(&r.task_id)
                            .is_some_and(|t| t.reconstructing)
                    });
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

    // ---------------------------------------------------------------- client side

    /// Statuses of tasks of a lease (unknown ids → NotFound).
    pub fn statuses(
        &self,
        lease: &Arc<str>,
        ids: &[u64],
    ) -> Result<Vec<pb::TaskStatus>, KeeperError> {
        self.inner.lock().tasks.statuses(lease, ids)
    }

    /// List tasks of a lease.
    pub fn list(
        &self,
        lease: &Arc<str>,
        state: TaskState,
        after: u64,
        limit: usize,
    ) -> Vec<pb::TaskStatus> {
        self.inner.lock().tasks.list(lease, state, after, limit)
    }

    /// Cancel tasks of a lease; true for each task that was not already done.
    pub fn cancel(&self, lease: &Arc<str>, ids: &[u64]) -> Result<Vec<bool>, KeeperError> {
        let mut g = self.inner.lock();
        for &id in ids {
            g.tasks.of_lease(lease, id)?;
        }
        Ok(self.with(&mut g, |f| ids.iter().map(|&id| f.cancel(id)).collect()))
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
            let rx = match self
                .inner
                .lock()
                .tasks
                .wait_one(lease, id, timeout.is_zero())?
            {
                Ok(status) => return Ok(status),
                Err(rx) => rx,
            };
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                return self.inner.lock().tasks.status(id);
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
        // Tasks already durably terminal are answered from this first look (retention cannot
        // take them away meanwhile); the others get a waiter, which also pins them.
        let (out, rx) = self
            .inner
            .lock()
            .tasks
            .wait_many(lease, ids, timeout.is_zero())?;
        if let Some(rx) = rx {
            let _ = tokio::time::timeout_at(deadline, rx).await;
        }
        let g = self.inner.lock();
        ids.iter()
            .zip(out)
            .map(|(&id, o)| match o {
                Some(o) => Ok(o),
                None => g.tasks.outcome(id),
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

    // ---------------------------------------------------------------- store and retention

    /// Store commit sink (`immediate` durability): terminal states become visible.
    pub fn on_commit(&self, ids: Vec<u64>) {
        let mut g = self.inner.lock();
        let mut events = Vec::new();
        self.mark_visible(&mut g, ids, &mut events);
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
        let (old, drops) = g.tasks.forget_older(cutoff);
        if old.is_empty() {
            return 0;
        }
        for (w, objects) in drops {
            g.cl.send(
                &w,
                pb::keeper_message::Msg::Drop(pb::DropObjects { objects }),
            );
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

    /// Record evidence (a benchmark-proof verdict) through the group commit, like a worker's
    /// death; the receiver completes when it is durable.
    pub fn record_evidence(&self, ev: Evidence) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.op(|f| {
            f.ctx.batch.evidence.push(ev);
            f.ctx.batch.ack = Some(tx);
        });
        rx
    }

    /// The lease ended on chain (the chain side calls this; see `Flow::end_lease`): its
    /// unfinished tasks fail with `LeaseEnded` and `reason`, its cluster is detached, its
    /// objects dropped, and later calls on it are refused saying why. Returns how many tasks
    /// were not done.
    pub fn end_lease(&self, lease: &str, reason: &str) -> usize {
        let lease: Arc<str> = lease.into();
        let n = self.op(|f| f.end_lease(&lease, reason));
        if n > 0 {
            info!(lease = %lease, tasks = n, reason, "lease ended: unfinished tasks failed");
        }
        n
    }

    /// The lease goes on with `gpus` GPUs, without the workers in `expel` (see
    /// `Flow::resize_lease`); `gpus` is the lease's count on chain.
    pub fn resize_lease(&self, lease: &str, expel: &[Arc<str>], gpus: u32, reason: &str) {
        let lease: Arc<str> = lease.into();
        self.op(|f| f.resize_lease(&lease, expel, gpus, reason));
    }

    /// Records a checkpoint the chain side is about to send; completes once it is durable
    /// (so what was posted can always be served, even after a crash right after sending).
    pub async fn record_checkpoint(&self, c: pb::CheckpointTranscript) -> Result<(), KeeperError> {
        self.checkpoints
            .lock()
            .insert((c.lease_id.clone(), c.sequence), c.clone());
        let (tx, rx) = oneshot::channel();
        let batch = Batch {
            checkpoints: vec![c],
            ack: Some(tx),
            ..Default::default()
        };
        // A refused batch drops the sender: the caller sees "could not persist".
        let _ = self.store.send(batch);
        Self::durable(rx).await
    }

    /// A checkpoint this keeper recorded.
    pub fn checkpoint(&self, lease: &str, sequence: u64) -> Option<pb::CheckpointTranscript> {
        self.checkpoints
            .lock()
            .get(&(lease.to_string(), sequence))
            .cloned()
    }

    /// Stop: refuse new work, end worker streams, flush the store.
    pub fn shutdown(&self) {
        {
            let mut g = self.inner.lock();
            g.shutting_down = true;
            g.cl.clear();
        }
        self.store.shutdown();
    }
}
