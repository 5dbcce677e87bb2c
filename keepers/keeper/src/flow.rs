//! The coordinator's transitions: one task or worker event walked across the task manager
//! ([`crate::tasks`]) and the cluster manager ([`crate::cluster`]) under the core's lock.
//!
//! A [`Flow`] borrows the locked state ([`Inner`]) for one operation and collects its side
//! effects in a [`Ctx`] — assignments per worker, store records, watch events — which
//! [`crate::core::Core`] sends after the operation (still under the lock, never awaiting).
//! Nothing here does I/O or knows about gRPC; the managers never call each other, only this.
//!
//! ```text
//!  submit ─▶ wire_deps ─▶ make_ready ─▶ scheduler ─▶ start ─▶ (lane) ─▶ Assignment
//!                ▲            │ lost input: reconstruct (lineage)          │
//!                │            ▼                                            ▼
//!   finish_ok ◀──┴── on_result ◀── end_run (grant back, or on to the lane's next task)
//!   finish_failed / retry_or_fail ◀── worker lost, error, cancel
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use pb::ErrorKind;
use tracing::{debug, info, warn};

use crate::cluster::{Clusters, LaneStep, Pipe};
use crate::directory::LeaseDirectory;
use crate::error::KeeperError;
use crate::metrics::Metrics;
use crate::proof_routes::ProofRoutes;
use crate::sched::{Decision, Grant};
use crate::store::{Batch, Evidence, EvidenceKind};
use crate::tasks::{MAX_LOST_INPUT_RERUNS, Out, Phase, Retry, Task, TaskTable, now_ms, out_count};

/// A state change, broadcast to `Watch` streams.
#[derive(Clone, Debug)]
pub struct Event {
    /// Lease of the task.
    pub lease: Arc<str>,
    /// New status.
    pub status: pb::TaskStatus,
}

/// Mutable keeper state: the two managers, behind the core's one lock.
#[derive(Default)]
pub struct Inner {
    pub(crate) tasks: TaskTable,
    pub(crate) cl: Clusters,
    pub(crate) shutting_down: bool,
}

/// Per-operation side effects, sent before the lock is released.
#[derive(Default)]
pub(crate) struct Ctx {
    pub assigns: HashMap<Arc<str>, Vec<pb::Assignment>>,
    pub batch: Batch,
    pub events: Vec<Event>,
}

/// What a flow reads besides the state.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub default_max_retries: u32,
    pub pipeline_depth: u32,
    pub pipeline_below_us: f64,
    pub metrics: &'a Metrics,
    pub proofs: &'a ProofRoutes,
    pub leases: &'a dyn LeaseDirectory,
    /// Someone watches task events (otherwise none are built).
    pub watched: bool,
}

/// One operation on the locked state.
pub(crate) struct Flow<'a> {
    pub s: &'a mut Inner,
    pub ctx: Ctx,
    pub env: Env<'a>,
}

impl Flow<'_> {
    /// Queue a watch event with a task's current status.
    pub fn event(&mut self, id: u64) {
        if !self.env.watched {
            return;
        }
        if let Some(t) = self.s.tasks.tasks.get(&id) {
            self.ctx.events.push(Event {
                lease: t.lease.clone(),
                status: t.status(id),
            });
        }
    }

    // ------------------------------------------------------------ clusters

    /// Makes sure a lease's cluster exists (idle workers of its provider join it); false when
    /// the lease is unknown.
    pub fn ensure_cluster(&mut self, lease: &Arc<str>) -> bool {
        if self.s.cl.clusters.contains_key(lease) {
            return true;
        }
        let Some(info) = self.env.leases.lease(lease) else {
            return false;
        };
        self.s.cl.ended.remove(lease);
        self.s.cl.insert(lease, info);
        for k in self.s.cl.with_room(None) {
            self.try_attach(&k, lease);
        }
        true
    }

    /// Worker `key` joins `lease`'s cluster if it may; tasks waiting for resources may start.
    pub fn try_attach(&mut self, key: &Arc<str>, lease: &Arc<str>) -> bool {
        if !self.s.cl.attach(key, lease) {
            return false;
        }
        self.cluster_changed(lease);
        self.dispatch(lease);
        true
    }

    fn cluster_changed(&mut self, lease: &Arc<str>) {
        if let Some(rec) = self.s.cl.changed(lease) {
            self.ctx.batch.clusters.push((lease.to_string(), rec));
        }
    }

    /// Start what the scheduler can start now on a lease's cluster.
    pub fn dispatch(&mut self, lease: &Arc<str>) {
        for (id, g) in self.s.cl.dispatch(lease) {
            self.start(id, g);
        }
    }

    // ------------------------------------------------------------ task lifecycle

    /// Count unfinished deps, register as dependent, and make ready if none.
    pub fn wire_deps_and_ready(&mut self, id: u64) {
        let Some(t) = self.s.tasks.tasks.get(&id) else {
            return;
        };
        let lease = t.lease.clone();
        if !self.ensure_cluster(&lease) {
            let msg = format!("lease {lease} no longer exists");
            self.finish_failed(id, ErrorKind::Unschedulable, msg, None);
            return;
        }
        match self.s.tasks.wire_deps(id) {
            Err((kind, msg)) => self.finish_failed(id, kind, msg, None),
            Ok(0) => self.make_ready(id),
            Ok(_) => {}
        }
    }

    /// All inputs available: check none is lost, then hand to the scheduler.
    pub fn make_ready(&mut self, id: u64) {
        let Some(t) = self.s.tasks.tasks.get(&id) else {
            return;
        };
        if t.phase != Phase::Waiting {
            return;
        }
        if t.cancel_requested {
            self.finish_failed(id, ErrorKind::Cancelled, "cancelled".into(), None);
            return;
        }
        // Lost inputs: re-make them from their task first (lineage).
        let lost = self.s.tasks.lost_inputs(t);
        if !lost.is_empty() {
            self.s.tasks.wait_for_remade(id, &lost);
            for d in lost {
                self.reconstruct(d);
            }
            return;
        }
        let (lease, spec) = (t.lease.clone(), t.spec.clone());
        let req = match self.s.cl.request_of(&lease, &spec) {
            None => return,
            Some(Ok(r)) => r,
            Some(Err(msg)) => {
                self.finish_failed(id, ErrorKind::Unschedulable, msg, None);
                return;
            }
        };
        let pipelining = self.env.pipeline_depth > 0;
        match self.s.cl.submit(&lease, id, &req, pipelining) {
            (Decision::Run(g), _) => self.start(id, g),
            (Decision::Queued, class) => {
                self.s.tasks.queued(id);
                if let Some(class) = class {
                    self.fill_open_lanes(&lease, class);
                }
            }
            (Decision::Unschedulable(msg), _) => {
                self.finish_failed(id, ErrorKind::Unschedulable, msg, None)
            }
        }
    }

    /// Task `id` got resources: send it to its worker (opening a lane when it may pipeline).
    fn start(&mut self, id: u64, g: Grant) {
        let t = &self.s.tasks.tasks[&id];
        let (lease, is_proof) = (t.lease.clone(), t.is_proof());
        let pipelining = self.env.pipeline_depth > 0;
        let Some((key, lane)) = self.s.cl.place(&lease, &g, pipelining, is_proof) else {
            return;
        };
        let gpus = self.s.cl.physical_gpus(&lease, &key, &g);
        let assignment = self.s.tasks.assignment(id, gpus, lane);
        self.s.tasks.begin_attempt(id, &key, true);
        let lane_grant = (lane != 0).then(|| g.clone());
        self.s.cl.hold(&lease, id, &key, Some(g), lane);
        // A benchmark proof's clock starts as its assignment goes out (flushed before unlock).
        if let Some(pb::task_spec::Executor::Proof(p)) =
            assignment.spec.as_ref().and_then(|s| s.executor.as_ref())
        {
            let tx = self.s.cl.workers.get(&key).map(|w| &w.tx);
            self.env
                .proofs
                .assigned(&p.challenge, id, assignment.attempt, &key, tx);
        }
        debug!(task = id, lease = %lease, worker = %key, "assigned");
        self.ctx
            .assigns
            .entry(key.clone())
            .or_default()
            .push(assignment);
        self.event(id);
        if let Some(g) = lane_grant {
            self.s.cl.open_lane(&lease, lane, key, &g, id);
            self.fill_lane(&lease, lane);
        }
    }

    /// Whether a queued task may wait in a lane: its name is known to run short in its class,
    /// it may be retried (a task waiting on a worker that dies counts an attempt), and it is
    /// not a benchmark proof (whose clock starts when the assignment goes out).
    fn pipelinable(below_us: f64, pipe: Option<&Pipe>, t: &Task) -> bool {
        t.max_retries > 0
            && !t.is_proof()
            && pipe
                .and_then(|p| p.mean_us.get(t.spec.name.as_str()))
                .is_some_and(|&m| m < below_us)
    }

    /// Send queued tasks of the lane's class into the lane while it has room; list it as open
    /// if room is left when the queue runs dry.
    fn fill_lane(&mut self, lease: &Arc<str>, lane: u64) {
        loop {
            let tasks = &self.s.tasks.tasks;
            let below = self.env.pipeline_below_us;
            let step = self
                .s
                .cl
                .lane_next(lease, lane, self.env.pipeline_depth, |id, pipe| {
                    tasks
                        .get(&id)
                        .is_some_and(|t| Self::pipelinable(below, pipe, t))
                });
            match step {
                LaneStep::Take(id) => self.pipe(lease, lane, id),
                LaneStep::Stop => return,
            }
        }
    }

    /// A task of `class` just queued: hand queued tasks of the class to open lanes, oldest
    /// first (the scheduler's queue order is kept).
    fn fill_open_lanes(&mut self, lease: &Arc<str>, class: u32) {
        loop {
            let Some(lane) = self.s.cl.pop_open_lane(lease, class) else {
                return;
            };
            let Some(lane) = lane else {
                continue; // closed since it was listed
            };
            self.fill_lane(lease, lane);
            // Listed again means the class's queue ran dry; otherwise the lane filled up or
            // stopped taking tasks, and the next open lane may take what is left.
            if self.s.cl.open_lanes_done(lease, lane, class) {
                return;
            }
        }
    }

    /// Send task `id` (popped from the scheduler's queue) into a lane on the lane's worker.
    fn pipe(&mut self, lease: &Arc<str>, lane: u64, id: u64) {
        let Some((worker, holder)) = self.s.cl.enqueue_in_lane(lease, lane, id) else {
            return;
        };
        let gpu_ids = self.s.cl.gpu_ids(holder);
        let assignment = self.s.tasks.assignment(id, gpu_ids, lane);
        // It stays Queued for the client until the grant reaches it.
        self.s.tasks.begin_attempt(id, &worker, false);
        self.s.cl.hold(lease, id, &worker, None, lane);
        self.env.metrics.tasks_pipelined.inc();
        debug!(task = id, lease = %lease, worker = %worker, lane, "pipelined");
        self.ctx.assigns.entry(worker).or_default().push(assignment);
    }

    /// A task's result arrived: its grant goes back, or on to the next task of its lane.
    fn end_run(&mut self, id: u64, run_micros: u64) {
        let Some(t) = self.s.tasks.tasks.get_mut(&id) else {
            return;
        };
        t.progress.clear();
        let (lease, worker) = (t.lease.clone(), t.worker.clone());
        let lane = self.s.cl.lane_of(id);
        if lane != 0 && run_micros > 0 {
            self.s
                .cl
                .learn_run_time(&lease, lane, &t.spec.name, run_micros);
        }
        let next = if lane == 0 {
            None
        } else {
            self.s.cl.lane_pass(&lease, lane, id)
        };
        let Some(next) = next else {
            self.s.cl.release(&lease, id, worker.as_ref());
            return;
        };
        // The worker has started `next` already (or is about to): it inherits the grant.
        let grant = self.s.cl.take_grant(id, worker.as_ref());
        self.s.cl.pass_grant(&lease, next, lane, grant);
        self.s.tasks.grant_reached(next);
        self.event(next);
        self.fill_lane(&lease, lane);
    }

    fn finish_ok(&mut self, id: u64, outputs: Vec<Out>, exit_code: Option<i32>) {
        let (first, ready) = self
            .s
            .tasks
            .finish_ok(id, outputs, exit_code, &mut self.ctx.batch);
        if first {
            self.env.metrics.tasks_finished.inc();
        }
        for d in ready {
            self.make_ready(d);
        }
    }

    /// Task `id` failed (and every task depending on it).
    pub fn finish_failed(&mut self, id: u64, kind: ErrorKind, msg: String, exit_code: Option<i32>) {
        let f = self
            .s
            .tasks
            .finish_failed(id, kind, msg, exit_code, &mut self.ctx.batch);
        self.s.cl.unqueue(&f.unqueue);
        self.env.metrics.tasks_failed.inc_by(f.failed);
    }

    /// A system failure (worker died, input lost): retry within budget or fail.
    fn retry_or_fail(&mut self, id: u64, kind: ErrorKind, msg: String) {
        match self.s.tasks.retry_plan(id, &msg) {
            None => {}
            Some(Retry::Cancelled) => {
                self.finish_failed(id, ErrorKind::Cancelled, "cancelled".into(), None)
            }
            Some(Retry::Again) => {
                self.env.metrics.task_retries.inc();
                self.wire_deps_and_ready(id);
                self.event(id);
            }
            Some(Retry::Fail(m)) => self.finish_failed(id, kind, m, None),
        }
    }

    /// Re-run a finished task whose output was lost (lineage reconstruction).
    pub fn reconstruct(&mut self, id: u64) {
        if self.s.tasks.reconstruct(id) {
            self.env.metrics.task_retries.inc();
            info!(task = id, "re-making lost output from its task (lineage)");
            self.wire_deps_and_ready(id);
        }
    }

    /// One result from worker `key`; returns the task's lease when it was current.
    pub fn on_result(&mut self, key: &Arc<str>, r: pb::TaskResult) -> Option<Arc<str>> {
        let id = r.task_id;
        let current = matches!(self.s.tasks.tasks.get(&id), Some(t) if t.phase == Phase::Running && t.attempts == r.attempt && t.worker.as_ref() == Some(key));
        if !current {
            debug!(task = id, attempt = r.attempt, "stale result ignored");
            return None;
        }
        // Only successful runs teach the keeper how long a task runs.
        let ran = if r.error_kind == ErrorKind::None as i32 {
            r.run_micros
        } else {
            0
        };
        self.end_run(id, ran);
        let t = self.s.tasks.tasks.get(&id)?;
        let lease = t.lease.clone();
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
                self.finish_ok(id, outs, r.exit_code);
            }
            ErrorKind::ObjectLost if !r.lost.is_empty() => {
                // Inputs gone: mark them lost, re-make them, run this task again.
                self.s.tasks.mark_lost(&r.lost);
                let rerun = self.s.tasks.tasks.get_mut(&id).map(|t| {
                    t.lost_reruns += 1;
                    t.attempts = t.attempts.saturating_sub(1);
                    let again = t.lost_reruns <= MAX_LOST_INPUT_RERUNS + t.max_retries;
                    if again {
                        t.phase = Phase::Waiting;
                    }
                    again
                });
                if rerun == Some(true) {
                    self.make_ready(id);
                } else {
                    self.finish_failed(id, ErrorKind::ObjectLost, r.error, None);
                }
            }
            ErrorKind::Cancelled if t.cancel_requested => {
                self.finish_failed(id, ErrorKind::Cancelled, "cancelled".into(), r.exit_code)
            }
            // Nobody asked: the worker stopped it on its own (shutting down past its drain
            // timeout). That is the worker failing, not the task: retry within budget.
            ErrorKind::Cancelled => self.retry_or_fail(
                id,
                ErrorKind::WorkerDied,
                format!("worker {key} stopped the task unasked (shutting down)"),
            ),
            ErrorKind::Application | ErrorKind::TimeLimit | ErrorKind::MemoryLimit => {
                let retry =
                    t.spec.retry_exceptions && t.attempts <= t.max_retries && !t.cancel_requested;
                if retry {
                    self.env.metrics.task_retries.inc();
                    if let Some(t) = self.s.tasks.tasks.get_mut(&id) {
                        t.phase = Phase::Waiting;
                        t.exit_code = r.exit_code;
                    }
                    self.wire_deps_and_ready(id);
                } else if t.cancel_requested {
                    let msg = "cancelled".into();
                    self.finish_failed(id, ErrorKind::Cancelled, msg, r.exit_code);
                } else {
                    self.finish_failed(id, kind, r.error, r.exit_code);
                }
            }
            other => self.finish_failed(id, other, r.error, r.exit_code),
        }
        Some(lease)
    }

    /// Progress of the current attempt of a task on worker `key` (its runtime env building).
    pub fn on_progress(&mut self, key: &Arc<str>, p: pb::TaskProgress) {
        let Some(t) = self.s.tasks.tasks.get_mut(&p.task_id) else {
            return;
        };
        if t.phase != Phase::Running || t.attempts != p.attempt || t.worker.as_ref() != Some(key) {
            return;
        }
        // Bounded: a worker's message is shown to the client, not stored without limit.
        t.progress = p.message.chars().take(512).collect();
        self.event(p.task_id);
    }

    /// Cancel task `id` (checked to be of the caller's lease); false when it was done.
    pub fn cancel(&mut self, id: u64) -> bool {
        let Some(t) = self.s.tasks.tasks.get_mut(&id) else {
            return false;
        };
        match t.phase {
            Phase::Done => false,
            Phase::Waiting | Phase::Queued => {
                t.cancel_requested = true;
                let msg = "cancelled by the user".into();
                self.finish_failed(id, ErrorKind::Cancelled, msg, None);
                true
            }
            Phase::Running => {
                t.cancel_requested = true;
                let attempt = t.attempts;
                if let Some(w) = t.worker.clone() {
                    let msg = pb::keeper_message::Msg::Cancel(pb::CancelTask {
                        task_id: id,
                        attempt,
                    });
                    self.s.cl.send(&w, msg);
                }
                true
            }
        }
    }

    /// The error for a lease without a cluster: ended (and why), or never known.
    pub fn lease_error(&self, lease: &Arc<str>) -> KeeperError {
        match self.s.cl.ended.get(lease) {
            Some(why) => KeeperError::LeaseEnded(format!("lease {lease} ended: {why}")),
            None => KeeperError::NotFound(format!("lease {lease}")),
        }
    }

    /// The lease ended on chain (closed, expired, its provider slashed, or moved to another
    /// keeper): what its workers run is cancelled there, every task of it not done fails with
    /// `LeaseEnded` and `reason` (dependents with it), the objects its tasks left on workers
    /// are dropped, and its workers go back to their provider's pool, joining another lease
    /// of it that lacks GPUs. Returns how many tasks were not done.
    pub fn end_lease(&mut self, lease: &Arc<str>, reason: &str) -> usize {
        let ids = self.s.tasks.unfinished_of(lease);
        for &id in &ids {
            if let Some(t) = self.s.tasks.tasks.get(&id)
                && t.phase == Phase::Running
                && let Some(w) = t.worker.clone()
            {
                let cancel = pb::CancelTask {
                    task_id: id,
                    attempt: t.attempts,
                };
                self.s.cl.send(&w, pb::keeper_message::Msg::Cancel(cancel));
            }
        }
        let members = self.s.cl.end(lease, reason);
        for &id in &ids {
            let msg = format!("lease ended: {reason}");
            self.finish_failed(id, ErrorKind::LeaseEnded, msg, None);
        }
        for (w, objects) in self.s.tasks.drop_objects_of(lease) {
            self.s.cl.send(
                &w,
                pb::keeper_message::Msg::Drop(pb::DropObjects { objects }),
            );
        }
        for key in members {
            let provider = match self.s.cl.workers.get(&key) {
                Some(w) => w.provider.clone(),
                None => continue,
            };
            self.join_a_lease(&key, &provider);
        }
        ids.len()
    }

    /// The lease goes on with `gpus` GPUs (its count changed on chain: a resize, or a slash
    /// that took the GPUs of the workers in `expel` out of it). The workers in `expel` never
    /// rejoin it; when the count shrank, the latest-joined members whose shares take it past
    /// the count leave too. Tasks of the lease running on a leaving worker are cancelled there
    /// and run again on the others (as when a worker dies). Then workers of the provider with
    /// room top the cluster up to the count (a grow, or a shrink that dropped a whole share),
    /// and the leaving workers may serve another lease of their provider.
    pub fn resize_lease(&mut self, lease: &Arc<str>, expel: &[Arc<str>], gpus: u32, reason: &str) {
        for key in expel {
            self.s.cl.forbid(lease, key);
        }
        self.s.cl.set_gpus(lease, gpus);
        let mut leaving = expel.to_vec();
        leaving.extend(self.s.cl.excess(lease, expel));
        for key in &leaving {
            let Some((idx, running)) = self.s.cl.detach(lease, key) else {
                continue;
            };
            for &id in &running {
                if let Some(t) = self.s.tasks.tasks.get(&id) {
                    let cancel = pb::CancelTask {
                        task_id: id,
                        attempt: t.attempts,
                    };
                    self.s.cl.send(key, pb::keeper_message::Msg::Cancel(cancel));
                }
            }
            for (t, msg) in self.s.cl.leave(lease, key, idx, &running) {
                self.finish_failed(t, ErrorKind::Unschedulable, msg, None);
            }
            info!(lease = %lease, worker = %key, tasks = running.len(), reason, "worker left the lease");
            for t in running {
                let msg = format!("worker {key} left the lease: {reason}");
                self.retry_or_fail(t, ErrorKind::WorkerDied, msg);
            }
        }
        self.cluster_changed(lease);
        self.dispatch(lease);
        let provider = self
            .s
            .cl
            .clusters
            .get(lease)
            .map(|c| c.info.provider.clone());
        if let Some(provider) = provider {
            for key in self.s.cl.with_room(Some(&provider)) {
                if !leaving.contains(&key) {
                    self.try_attach(&key, lease);
                }
            }
        }
        for key in &leaving {
            if let Some(provider) = self.s.cl.workers.get(key).map(|w| w.provider.clone()) {
                self.join_a_lease(key, &provider);
            }
        }
    }

    /// A worker with room joins every lease of its provider whose cluster lacks GPUs, until
    /// its GPUs are all given (a 2-GPU and a 4-GPU lease share an 8-GPU worker).
    fn join_a_lease(&mut self, key: &Arc<str>, provider: &str) {
        for l in self.env.leases.leases_for_provider(provider) {
            let lease: Arc<str> = l.lease_id.as_str().into();
            self.ensure_cluster(&lease);
            if self.s.cl.workers.get(key).is_none_or(|w| !w.has_room()) {
                return;
            }
            self.try_attach(key, &lease);
        }
    }

    // ------------------------------------------------------------ workers

    /// Admit a verified worker's connection (replacing an older one) and attach it to a
    /// cluster of its provider that lacks GPUs.
    pub fn register_worker(
        &mut self,
        key: &Arc<str>,
        reg: pb::Register,
        tx: tokio::sync::mpsc::UnboundedSender<pb::KeeperMessage>,
        session: [u8; 16],
    ) -> u64 {
        if let Some(old) = self.s.cl.workers.get(key).map(|w| w.conn_id) {
            self.lose_worker(key, old, "replaced by a new connection".into());
        }
        let provider = reg.provider.clone();
        let conn_id = self.s.cl.connect(key, reg, tx, session);
        self.env.metrics.workers_connected.inc();
        info!(worker = %key, provider = %provider, "worker registered");
        self.join_a_lease(key, &provider);
        conn_id
    }

    /// A worker's stream ended or it missed heartbeats: its tasks run again elsewhere, the
    /// objects it held are lost, an idle worker of the provider takes its place.
    pub fn lose_worker(&mut self, key: &Arc<str>, conn_id: u64, reason: String) {
        let Some(w) = self.s.cl.disconnect(key, conn_id) else {
            return;
        };
        self.env.metrics.workers_connected.dec();
        self.env.metrics.workers_dead.inc();
        let mut running: Vec<u64> = w.running.iter().copied().collect();
        running.sort_unstable();
        let leases: Vec<&str> = w.slices.iter().map(|s| &*s.lease).collect();
        warn!(worker = %key, ?leases, running = running.len(), reason = %reason, "worker dead");
        self.ctx.batch.evidence.push(Evidence {
            worker: key.to_string(),
            provider: w.provider.clone(),
            lease: leases.join(","),
            reason: reason.clone(),
            at_unix_ms: now_ms(),
            tasks: running.clone(),
            kind: EvidenceKind::WorkerDied as i32,
            ..Default::default()
        });
        // Objects it held are lost (re-made on demand).
        self.s.tasks.worker_gone(key);
        for s in &w.slices {
            let mine: Vec<u64> = running
                .iter()
                .copied()
                .filter(|t| {
                    self.s
                        .tasks
                        .tasks
                        .get(t)
                        .is_some_and(|t| t.lease == s.lease)
                })
                .collect();
            for (t, msg) in self.s.cl.leave(&s.lease, key, s.idx, &mine) {
                self.finish_failed(t, ErrorKind::Unschedulable, msg, None);
            }
        }
        for t in running {
            let msg = format!("worker {key} died: {reason}");
            self.retry_or_fail(t, ErrorKind::WorkerDied, msg);
        }
        // Workers of the provider with room take its place, if any.
        for s in &w.slices {
            for k in self.s.cl.with_room(Some(&w.provider)) {
                self.try_attach(&k, &s.lease);
            }
            self.cluster_changed(&s.lease);
            self.dispatch(&s.lease);
        }
    }
}
