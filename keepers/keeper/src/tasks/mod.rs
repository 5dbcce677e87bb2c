//! The task manager (Ray's `TaskManager` with the owner's object directory): what was
//! submitted, what each task waits for, its attempts and retries, its outputs and where they
//! live, lineage re-execution of lost outputs, and retention.
//!
//! It owns [`TaskTable`] and nothing else: no worker, no scheduler, no channel, no clock
//! beyond stamping `finished_ms`. Every method is synchronous and returns what the caller
//! (the coordinator in [`crate::flow`]) has to do next on the cluster side — cancel a queued
//! task in the scheduler, make dependents ready, send an assignment.
//!
//! Exactly-once completion as seen by clients lives here too: a task's terminal state is
//! shown (`visible_state`) only once it is `durable`, which [`TaskTable::mark_visible`] sets
//! when the store reports the record committed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use pb::{ErrorKind, TaskState};
use tokio::sync::oneshot;

use crate::error::KeeperError;
use crate::store::{Batch, TaskRecord};

mod task;

pub(crate) use task::{
    GroupWait, MAX_LOST_INPUT_RERUNS, Out, Phase, Task, Waiter, now_ms, out_count, validate_batch,
};
pub use task::{MAX_BATCH, task_struct_bytes};

const FORGOTTEN: &str =
    "(never submitted to this lease, or finished and forgotten after task_retention)";

/// Tasks that failed and what the scheduler must forget (see [`TaskTable::finish_failed`]).
#[derive(Default)]
pub(crate) struct Failed {
    /// Tasks that were waiting in the scheduler's queue: (lease, id).
    pub unqueue: Vec<(Arc<str>, u64)>,
    /// Tasks that became visibly failed or cancelled (for the metrics).
    pub failed: u64,
}

/// What to do with a task after a system failure (see [`TaskTable::retry_plan`]).
pub(crate) enum Retry {
    /// It was cancelled meanwhile: finish it as cancelled.
    Cancelled,
    /// Within its budget: run it again.
    Again,
    /// Out of retries: fail it with this message.
    Fail(String),
}

/// Every task the keeper knows, its dependency graph and where its outputs live.
pub(crate) struct TaskTable {
    pub tasks: HashMap<u64, Task>,
    pub next_id: u64,
    /// Task → tasks waiting for it.
    pub dependents: HashMap<u64, Vec<u64>>,
    /// Worker → tasks with an output on it (the object directory).
    pub held_by: HashMap<Arc<str>, HashSet<u64>>,
}

impl Default for TaskTable {
    fn default() -> Self {
        TaskTable {
            tasks: HashMap::new(),
            next_id: 1,
            dependents: HashMap::new(),
            held_by: HashMap::new(),
        }
    }
}

impl TaskTable {
    /// Rebuild a task from its record after a restart; true when it must run again.
    pub fn recover(&mut self, rec: TaskRecord, default_max_retries: u32) -> bool {
        self.next_id = self.next_id.max(rec.id + 1);
        let state = TaskState::try_from(rec.state).unwrap_or(TaskState::Queued);
        let terminal = matches!(
            state,
            TaskState::Finished | TaskState::Failed | TaskState::Cancelled
        );
        let spec = rec.spec.clone().unwrap_or_default();
        let n_out = out_count(&spec) as usize;
        let mut outputs = vec![Out::Lost; if terminal { n_out } else { 0 }];
        for o in &rec.outputs {
            if let Some(slot) = outputs.get_mut(o.index as usize) {
                *slot = if o.inline {
                    Out::Inline(o.data.clone())
                } else if !o.worker.is_empty() {
                    let w: Arc<str> = o.worker.as_str().into();
                    self.held_by.entry(w.clone()).or_default().insert(rec.id);
                    Out::Remote {
                        worker: w,
                        size: o.size,
                    }
                } else {
                    Out::Lost
                };
            }
        }
        let max_retries = spec.max_retries.unwrap_or(default_max_retries);
        let mut t = Task::new(rec.lease.as_str().into(), spec, max_retries, rec.deps);
        if terminal {
            t.state = state;
            t.phase = Phase::Done;
            t.durable = true;
            // Records from before retention existed count from the restart.
            t.finished_ms = if rec.finished_unix_ms == 0 {
                now_ms()
            } else {
                rec.finished_unix_ms
            };
        }
        t.attempts = rec.attempts;
        t.worker = (!rec.worker.is_empty()).then(|| rec.worker.as_str().into());
        t.error_kind = ErrorKind::try_from(rec.error_kind).unwrap_or(ErrorKind::None);
        t.error = rec.error;
        t.exit_code = rec.exit_code;
        t.outputs = outputs;
        self.tasks.insert(rec.id, t);
        !terminal
    }

    /// Checks a batch's object refs against the lease's tasks (a batch is accepted whole or
    /// not at all).
    pub fn check_refs(&self, lease: &Arc<str>, specs: &[pb::TaskSpec]) -> Result<(), KeeperError> {
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
                match self.tasks.get(&r.task_id) {
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
        Ok(())
    }

    /// Creates the tasks of a checked batch (batch refs become object refs) and queues their
    /// acceptance records in `batch` unless `defer_accept`. Returns their ids.
    pub fn accept(
        &mut self,
        lease: &Arc<str>,
        specs: Vec<pb::TaskSpec>,
        default_max_retries: u32,
        defer_accept: bool,
        batch: &mut Batch,
    ) -> Vec<u64> {
        let first = self.next_id;
        let ids: Vec<u64> = (first..first + specs.len() as u64).collect();
        self.next_id = first + specs.len() as u64;
        for (i, mut spec) in specs.into_iter().enumerate() {
            let id = ids[i];
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
            let max_retries = spec.max_retries.unwrap_or(default_max_retries);
            let mut t = Task::new(lease.clone(), spec, max_retries, deps);
            if defer_accept {
                t.accept_deferred = true;
            } else {
                batch.tasks.push(t.record(id));
            }
            self.tasks.insert(id, t);
        }
        ids
    }

    /// Records of deferred acceptances among `ids` that are not terminal yet, and whether any
    /// of `ids` is not durable yet (something to wait for).
    pub fn deferred_records(&mut self, ids: &[u64], batch: &mut Batch) -> bool {
        let mut pending = false;
        for &id in ids {
            let Some(t) = self.tasks.get_mut(&id) else {
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
        pending
    }

    /// Counts a task's unfinished dependencies and registers it as their dependent. `Ok(n)`:
    /// it now waits for `n` of them (0: ready); `Err`: a dependency failed or is unknown.
    pub fn wire_deps(&mut self, id: u64) -> Result<u32, (ErrorKind, String)> {
        let deps = self
            .tasks
            .get(&id)
            .map(|t| t.deps.clone())
            .unwrap_or_default();
        let mut left = 0;
        for d in deps {
            match self.tasks.get(&d).map(|t| (t.phase, t.state)) {
                Some((Phase::Done, TaskState::Finished)) => {}
                Some((Phase::Done, _)) => {
                    return Err((
                        ErrorKind::DependencyFailed,
                        format!("dependency {d} failed"),
                    ));
                }
                Some(_) => {
                    left += 1;
                    self.dependents.entry(d).or_default().push(id);
                }
                None => {
                    return Err((
                        ErrorKind::DependencyFailed,
                        format!("dependency {d} unknown"),
                    ));
                }
            }
        }
        if let Some(t) = self.tasks.get_mut(&id) {
            t.deps_left = left;
            t.phase = Phase::Waiting;
            if !t.reconstructing {
                t.state = TaskState::WaitingForDeps;
            }
        }
        Ok(left)
    }

    /// Dependencies of a waiting task whose output is lost (to re-make first).
    pub fn lost_inputs(&self, t: &Task) -> Vec<u64> {
        t.deps
            .iter()
            .copied()
            .filter(|d| {
                self.tasks
                    .get(d)
                    .is_some_and(|dt| dt.outputs.iter().any(|o| matches!(o, Out::Lost)))
            })
            .collect()
    }

    /// Task `id` waits for the lost inputs `lost` to be re-made.
    pub fn wait_for_remade(&mut self, id: u64, lost: &[u64]) {
        for d in lost {
            self.dependents.entry(*d).or_default().push(id);
        }
        if let Some(t) = self.tasks.get_mut(&id) {
            t.deps_left = lost.len() as u32;
        }
    }

    /// The task was handed to the scheduler's queue.
    pub fn queued(&mut self, id: u64) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.phase = Phase::Queued;
            if !t.reconstructing {
                t.state = TaskState::Queued;
            }
        }
    }

    /// A new attempt goes out to `worker`; `running` when it holds its resources (a task
    /// sent into a lane stays Queued for the client until the grant reaches it).
    pub fn begin_attempt(&mut self, id: u64, worker: &Arc<str>, running: bool) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.attempts += 1;
            t.phase = Phase::Running;
            t.progress.clear();
            if running && !t.reconstructing {
                t.state = TaskState::Running;
            }
            t.worker = Some(worker.clone());
        }
    }

    /// A task waiting in a lane got the grant: the client sees it running.
    pub fn grant_reached(&mut self, id: u64) {
        if let Some(t) = self.tasks.get_mut(&id)
            && !t.reconstructing
            && !t.cancel_requested
        {
            t.state = TaskState::Running;
        }
    }

    fn input_of(&self, r: &pb::ObjectRef) -> pb::Input {
        use pb::input::Kind;
        let kind = match self
            .tasks
            .get(&r.task_id)
            .and_then(|t| t.outputs.get(r.index as usize))
        {
            Some(Out::Inline(b)) => Kind::Value(b.clone()),
            _ => Kind::Remote(*r),
        };
        pb::Input { kind: Some(kind) }
    }

    fn arg_input(&self, k: Option<&pb::task_arg::Kind>) -> pb::Input {
        match k {
            Some(pb::task_arg::Kind::Value(v)) => pb::Input {
                kind: Some(pb::input::Kind::Value(v.clone())),
            },
            Some(pb::task_arg::Kind::Ref(r)) => self.input_of(r),
            _ => pb::Input {
                kind: Some(pb::input::Kind::Value(Bytes::new())),
            },
        }
    }

    /// The assignment that sends task `id` to a worker (its next attempt).
    pub fn assignment(&self, id: u64, gpu_ids: Vec<u32>, lane: u64) -> pb::Assignment {
        let t = &self.tasks[&id];
        let inputs = t
            .spec
            .args
            .iter()
            .map(|a| self.arg_input(a.kind.as_ref()))
            .collect();
        let stdin = match &t.spec.executor {
            Some(pb::task_spec::Executor::Process(p)) => p
                .stdin
                .as_ref()
                .and_then(|a| a.kind.as_ref())
                .map(|k| self.arg_input(Some(k))),
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

    /// Task `id` finished: keep its outputs, record it, and return its dependents that are
    /// now ready, and whether this is its first completion (not a re-made output).
    pub fn finish_ok(
        &mut self,
        id: u64,
        outputs: Vec<Out>,
        exit_code: Option<i32>,
        batch: &mut Batch,
    ) -> (bool, Vec<u64>) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return (false, Vec::new());
        };
        if t.worker.is_some() {
            for o in &outputs {
                if let Out::Remote { worker: w, .. } = o {
                    self.held_by.entry(w.clone()).or_default().insert(id);
                }
            }
        }
        let Some(t) = self.tasks.get_mut(&id) else {
            return (false, Vec::new());
        };
        t.outputs = outputs;
        t.phase = Phase::Done;
        t.finished_ms = now_ms();
        t.exit_code = exit_code;
        t.error_kind = ErrorKind::None;
        t.error.clear();
        let first = if t.reconstructing {
            // Already reported complete once: do not report again, just wake getters.
            t.reconstructing = false;
            for w in t.waiters.drain(..) {
                w.fire();
            }
            false
        } else {
            t.state = TaskState::Finished;
            batch.visible.push(id);
            true
        };
        batch.tasks.push(t.record(id));
        let mut ready = Vec::new();
        for d in self.dependents.remove(&id).unwrap_or_default() {
            if let Some(dt) = self.tasks.get_mut(&d)
                && dt.phase == Phase::Waiting
                && dt.deps_left > 0
            {
                dt.deps_left -= 1;
                if dt.deps_left == 0 {
                    ready.push(d);
                }
            }
        }
        (first, ready)
    }

    /// Task `id` failed (or was cancelled), and with it every task that depends on it.
    pub fn finish_failed(
        &mut self,
        id: u64,
        kind: ErrorKind,
        msg: String,
        exit_code: Option<i32>,
        batch: &mut Batch,
    ) -> Failed {
        let mut out = Failed::default();
        let mut work = vec![(id, kind, msg)];
        while let Some((id, kind, msg)) = work.pop() {
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            if t.phase == Phase::Done && !t.reconstructing {
                continue;
            }
            if t.phase == Phase::Queued {
                out.unqueue.push((t.lease.clone(), id));
            }
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
                batch.visible.push(id);
                out.failed += 1;
            }
            batch.tasks.push(t.record(id));
            tracing::warn!(task = id, kind = ?kind, error = %msg, "task failed");
            for d in self.dependents.remove(&id).unwrap_or_default() {
                let dkind = if kind == ErrorKind::ObjectLost {
                    ErrorKind::ObjectLost
                } else {
                    ErrorKind::DependencyFailed
                };
                work.push((d, dkind, format!("dependency {id} failed: {msg}")));
            }
        }
        out
    }

    /// After a system failure (worker died, stopped unasked): run again within budget, or not.
    pub fn retry_plan(&mut self, id: u64, msg: &str) -> Option<Retry> {
        let t = self.tasks.get_mut(&id)?;
        Some(if t.cancel_requested {
            Retry::Cancelled
        } else if t.attempts <= t.max_retries {
            tracing::info!(task = id, attempt = t.attempts, reason = %msg, "retrying task");
            t.phase = Phase::Waiting;
            t.worker = None;
            Retry::Again
        } else {
            Retry::Fail(format!(
                "{msg} (after {} attempts; max_retries = {})",
                t.attempts, t.max_retries
            ))
        })
    }

    /// Marks a finished task whose output was lost for re-execution (lineage); false when it
    /// cannot be (not finished, already being re-made, out of re-runs).
    pub fn reconstruct(&mut self, id: u64) -> bool {
        let Some(t) = self.tasks.get_mut(&id) else {
            return false;
        };
        if t.phase != Phase::Done || t.state != TaskState::Finished || t.reconstructing {
            return false;
        }
        if t.lost_reruns > t.max_retries + MAX_LOST_INPUT_RERUNS {
            return false;
        }
        t.lost_reruns += 1;
        t.reconstructing = true;
        t.phase = Phase::Waiting;
        true
    }

    /// Inputs a worker reported gone: mark them lost.
    pub fn mark_lost(&mut self, lost: &[pb::ObjectRef]) {
        for l in lost {
            if let Some(p) = self.tasks.get_mut(&l.task_id)
                && let Some(o) = p.outputs.get_mut(l.index as usize)
                && matches!(o, Out::Remote { .. })
            {
                *o = Out::Lost;
            }
        }
    }

    /// One output known lost (a pull failed, held by `worker`, or by anyone when None).
    pub fn mark_output_lost(&mut self, r: &pb::ObjectRef, worker: Option<&Arc<str>>) {
        if let Some(t) = self.tasks.get_mut(&r.task_id)
            && let Some(o) = t.outputs.get_mut(r.index as usize)
            && worker.is_none_or(|wk| matches!(o, Out::Remote { worker: w, .. } if w == wk))
        {
            *o = Out::Lost;
        }
    }

    /// Every output a dead worker held is lost (re-made on demand).
    pub fn worker_gone(&mut self, key: &Arc<str>) {
        for t in self.held_by.remove(key).unwrap_or_default() {
            if let Some(task) = self.tasks.get_mut(&t) {
                for o in task.outputs.iter_mut() {
                    if matches!(o, Out::Remote { worker, .. } if worker == key) {
                        *o = Out::Lost;
                    }
                }
            }
        }
    }

    /// Terminal states of `ids` are durable: show them and wake whoever waits. Returns the
    /// statuses to broadcast when `watched`.
    pub fn mark_visible(
        &mut self,
        ids: Vec<u64>,
        watched: bool,
    ) -> Vec<(Arc<str>, pb::TaskStatus)> {
        let mut events = Vec::new();
        for id in ids {
            let Some(t) = self.tasks.get_mut(&id) else {
                continue;
            };
            if t.phase == Phase::Done || t.reconstructing {
                t.durable = true;
                for w in t.waiters.drain(..) {
                    w.fire();
                }
            }
            if watched {
                events.push((t.lease.clone(), t.status(id)));
            }
        }
        events
    }

    /// A task of `lease`, or NotFound.
    pub fn of_lease(&self, lease: &Arc<str>, id: u64) -> Result<&Task, KeeperError> {
        self.tasks
            .get(&id)
            .filter(|t| t.lease == *lease)
            .ok_or_else(|| KeeperError::NotFound(format!("task {id} {FORGOTTEN}")))
    }

    /// Whether attempt `attempt` of task `id` is the one running on worker `key`.
    pub fn runs_on(&self, id: u64, attempt: u32, key: &Arc<str>) -> bool {
        self.tasks.get(&id).is_some_and(|t| {
            t.phase == Phase::Running && t.attempts == attempt && t.worker.as_ref() == Some(key)
        })
    }

    /// Statuses of tasks of a lease (unknown ids → NotFound).
    pub fn statuses(
        &self,
        lease: &Arc<str>,
        ids: &[u64],
    ) -> Result<Vec<pb::TaskStatus>, KeeperError> {
        ids.iter()
            .map(|&id| self.of_lease(lease, id).map(|t| t.status(id)))
            .collect()
    }

    /// Ids of a lease's tasks that are not done (or are being re-made), in id order.
    pub fn unfinished_of(&self, lease: &Arc<str>) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.lease == *lease && (t.phase != Phase::Done || t.reconstructing))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// A lease ended: the outputs of its tasks that live on workers are lost to it (nobody
    /// may read them any more). Returns what each worker should drop.
    pub fn drop_objects_of(&mut self, lease: &Arc<str>) -> HashMap<Arc<str>, Vec<pb::ObjectRef>> {
        let mut drops: HashMap<Arc<str>, Vec<pb::ObjectRef>> = HashMap::new();
        for (id, t) in self.tasks.iter_mut().filter(|(_, t)| t.lease == *lease) {
            for (i, o) in t.outputs.iter_mut().enumerate() {
                if let Out::Remote { worker, .. } = o {
                    drop_remote(&mut self.held_by, &mut drops, *id, i, worker);
                    *o = Out::Lost;
                }
            }
        }
        drops
    }

    /// Tasks of a lease in id order after `after`, in `state` (Unspecified: any).
    pub fn list(
        &self,
        lease: &Arc<str>,
        state: TaskState,
        after: u64,
        limit: usize,
    ) -> Vec<pb::TaskStatus> {
        let mut ids: Vec<u64> = self
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
            .filter_map(|id| self.tasks.get(id).map(|t| t.status(*id)))
            .collect()
    }

    /// The status of task `id` of `lease` if it is durably terminal (or `now`), otherwise a
    /// receiver that fires when it is.
    pub fn wait_one(
        &mut self,
        lease: &Arc<str>,
        id: u64,
        now: bool,
    ) -> Result<Result<pb::TaskStatus, oneshot::Receiver<()>>, KeeperError> {
        self.of_lease(lease, id)?;
        let t = self.tasks.get_mut(&id).expect("checked above");
        // `durable` is set once the terminal state is committed (and stays set while a lost
        // output is being re-made).
        if t.durable || now {
            return Ok(Ok(t.status(id)));
        }
        let (tx, rx) = oneshot::channel();
        t.waiters.push(Waiter::One(tx));
        Ok(Err(rx))
    }

    /// The status of a task, or NotFound.
    pub fn status(&self, id: u64) -> Result<pb::TaskStatus, KeeperError> {
        self.tasks
            .get(&id)
            .map(|t| t.status(id))
            .ok_or_else(|| KeeperError::NotFound(format!("task {id} {FORGOTTEN}")))
    }

    /// First look of a wait on several tasks: the outcomes of those already durably terminal
    /// (or all, when `now`), and a receiver that fires when the last of the others is.
    #[allow(clippy::type_complexity)]
    pub fn wait_many(
        &mut self,
        lease: &Arc<str>,
        ids: &[u64],
        now: bool,
    ) -> Result<(Vec<Option<pb::TaskOutcome>>, Option<oneshot::Receiver<()>>), KeeperError> {
        if let Some(id) = ids
            .iter()
            .find(|id| self.tasks.get(id).is_none_or(|t| t.lease != *lease))
        {
            return Err(KeeperError::NotFound(format!("task {id}")));
        }
        let (tx, rx) = oneshot::channel();
        let group = Arc::new(GroupWait {
            left: std::sync::atomic::AtomicUsize::new(0),
            tx: Mutex::new(Some(tx)),
        });
        let mut out = Vec::with_capacity(ids.len());
        let mut left = 0;
        for &id in ids {
            let Some(t) = self.tasks.get_mut(&id) else {
                out.push(None);
                continue;
            };
            if t.durable || now {
                out.push(Some(t.outcome(id)));
            } else {
                left += 1;
                t.waiters.push(Waiter::Group(group.clone()));
                out.push(None);
            }
        }
        // Waiters only fire under the core lock, which the caller holds: none can come first.
        group.left.store(left, std::sync::atomic::Ordering::Release);
        Ok((out, (left > 0).then_some(rx)))
    }

    /// The outcome of a task (after a wait), or NotFound.
    pub fn outcome(&self, id: u64) -> Result<pb::TaskOutcome, KeeperError> {
        self.tasks
            .get(&id)
            .map(|t| t.outcome(id))
            .ok_or_else(|| KeeperError::NotFound(format!("task {id} {FORGOTTEN}")))
    }

    /// Retention: forget durably finished tasks that ended at or before `cutoff` (unix ms) and
    /// that nothing needs any more. Returns their ids and, per worker, the objects to drop.
    #[allow(clippy::type_complexity)]
    pub fn forget_older(
        &mut self,
        cutoff: u64,
    ) -> (Vec<u64>, HashMap<Arc<str>, Vec<pb::ObjectRef>>) {
        // Inputs stay while a task may still need them: unfinished tasks, and finished ones
        // whose output lives on a worker (if it is lost, the task is re-made from them).
        let needed: HashSet<u64> = self
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
        let newest = self.next_id.saturating_sub(1);
        let old: Vec<u64> = self
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
                    && !self.dependents.contains_key(id)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut drops: HashMap<Arc<str>, Vec<pb::ObjectRef>> = HashMap::new();
        for id in &old {
            let Some(t) = self.tasks.remove(id) else {
                continue;
            };
            for (i, o) in t.outputs.iter().enumerate() {
                if let Out::Remote { worker, .. } = o {
                    drop_remote(&mut self.held_by, &mut drops, *id, i, worker);
                }
            }
        }
        (old, drops)
    }
}

/// Output `index` of task `id`, held by `worker`, is dropped there: it leaves the object
/// directory and joins the worker's list of objects to drop.
fn drop_remote(
    held_by: &mut HashMap<Arc<str>, HashSet<u64>>,
    drops: &mut HashMap<Arc<str>, Vec<pb::ObjectRef>>,
    id: u64,
    index: usize,
    worker: &Arc<str>,
) {
    drops
        .entry(worker.clone())
        .or_default()
        .push(pb::ObjectRef {
            task_id: id,
            index: index as u32,
        });
    if let Some(set) = held_by.get_mut(worker) {
        set.remove(&id);
    }
}
