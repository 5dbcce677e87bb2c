//! One task as the task manager keeps it: its record, what a client sees of it, who waits
//! for it, and the checks a submitted spec must pass.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use parking_lot::Mutex;
use pb::{ErrorKind, TaskState};
use tokio::sync::oneshot;

use crate::error::KeeperError;
use crate::store::{OutputRecord, TaskRecord};

/// Most tasks in one submit request.
pub const MAX_BATCH: usize = 100_000;
/// How many times a task may be re-run because an input was lost, beyond its retries.
pub(crate) const MAX_LOST_INPUT_RERUNS: u32 = 3;

/// Where one output of a finished task is.
#[derive(Clone, Debug)]
pub(crate) enum Out {
    Inline(Bytes),
    Remote { worker: Arc<str>, size: u64 },
    Lost,
}

/// Where a task is in the keeper's own lifecycle (finer than the client's [`TaskState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Waiting,
    Queued,
    Running,
    Done,
}

/// One task. Resources it holds (grant, lane) are the cluster manager's, not here.
pub(crate) struct Task {
    pub lease: Arc<str>,
    pub spec: Arc<pb::TaskSpec>,
    pub state: TaskState,
    pub phase: Phase,
    pub durable: bool,
    pub attempts: u32,
    pub lost_reruns: u32,
    pub max_retries: u32,
    pub deps: Vec<u64>,
    pub deps_left: u32,
    /// Worker it runs on (or ran on last).
    pub worker: Option<Arc<str>>,
    pub error_kind: ErrorKind,
    pub error: String,
    pub exit_code: Option<i32>,
    pub outputs: Vec<Out>,
    pub cancel_requested: bool,
    pub reconstructing: bool,
    pub accept_deferred: bool,
    pub waiters: Vec<Waiter>,
    /// What the running attempt reports doing before it starts (building its runtime env);
    /// cleared when the attempt ends.
    pub progress: String,
    /// Unix ms when it became terminal (retention counts from here); 0 while not terminal.
    pub finished_ms: u64,
}

impl Task {
    pub(crate) fn new(
        lease: Arc<str>,
        spec: pb::TaskSpec,
        max_retries: u32,
        deps: Vec<u64>,
    ) -> Self {
        Task {
            lease,
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
            error_kind: ErrorKind::None,
            error: String::new(),
            exit_code: None,
            outputs: Vec::new(),
            cancel_requested: false,
            reconstructing: false,
            accept_deferred: false,
            waiters: Vec::new(),
            progress: String::new(),
            finished_ms: 0,
        }
    }

    /// The state a client may see: terminal only once durable.
    pub fn visible_state(&self) -> TaskState {
        match self.state {
            TaskState::Finished | TaskState::Failed | TaskState::Cancelled if !self.durable => {
                TaskState::Running
            }
            s => s,
        }
    }

    /// Whether it is a benchmark proof (never pipelined: its clock starts with the assignment).
    pub fn is_proof(&self) -> bool {
        matches!(self.spec.executor, Some(pb::task_spec::Executor::Proof(_)))
    }

    /// The row the store keeps for it.
    pub fn record(&self, id: u64) -> TaskRecord {
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
                .map(|(i, o)| {
                    let (data, inline, size, worker) = match o {
                        Out::Inline(b) => (b.clone(), true, b.len() as u64, String::new()),
                        Out::Remote { worker, size } => {
                            (Bytes::new(), false, *size, worker.to_string())
                        }
                        Out::Lost => (Bytes::new(), false, 0, String::new()),
                    };
                    OutputRecord {
                        index: i as u32,
                        data,
                        inline,
                        size,
                        worker,
                    }
                })
                .collect(),
            worker: self.worker.as_deref().unwrap_or("").to_string(),
            deps: self.deps.clone(),
            finished_unix_ms: self.finished_ms,
        }
    }

    /// The status a client sees.
    pub fn status(&self, id: u64) -> pb::TaskStatus {
        let vis = self.visible_state();
        let terminal = matches!(
            vis,
            TaskState::Finished | TaskState::Failed | TaskState::Cancelled
        );
        pb::TaskStatus {
            task_id: id,
            state: vis as i32,
            name: self.spec.name.clone(),
            attempts: self.attempts,
            worker_id: self.worker.as_deref().unwrap_or("").to_string(),
            error_kind: if terminal { self.error_kind as i32 } else { 0 },
            error: if terminal {
                self.error.clone()
            } else {
                String::new()
            },
            exit_code: if terminal { self.exit_code } else { None },
            result_size: match self.outputs.first() {
                Some(Out::Inline(b)) if terminal => b.len() as u64,
                Some(Out::Remote { size, .. }) if terminal => *size,
                _ => 0,
            },
            progress: if vis == TaskState::Running {
                self.progress.clone()
            } else {
                String::new()
            },
        }
    }

    /// Status and, for a finished task, its inline output 0 (what submit-and-wait returns).
    pub fn outcome(&self, id: u64) -> pb::TaskOutcome {
        let status = self.status(id);
        let finished = status.state == TaskState::Finished as i32;
        let complete = finished
            || status.state == TaskState::Failed as i32
            || status.state == TaskState::Cancelled as i32;
        let data = match self.outputs.first() {
            Some(Out::Inline(b)) if finished => b.clone(),
            _ => Bytes::new(),
        };
        pb::TaskOutcome {
            status: Some(status),
            data,
            complete,
        }
    }
}

/// Someone waiting for a task to become durably terminal (or re-made).
pub(crate) enum Waiter {
    /// One task.
    One(oneshot::Sender<()>),
    /// One of several tasks: the last to fire wakes the waiter (submit-and-wait of a batch
    /// sleeps once instead of once per task).
    Group(Arc<GroupWait>),
}

/// A waiter on several tasks.
pub(crate) struct GroupWait {
    /// Tasks still to fire; only changed under the core lock.
    pub left: std::sync::atomic::AtomicUsize,
    pub tx: Mutex<Option<oneshot::Sender<()>>>,
}

impl Waiter {
    pub(crate) fn fire(self) {
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

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

/// Checks a batch on its own (size, executors, batch refs), before any lock is taken.
pub(crate) fn validate_batch(specs: &[pb::TaskSpec]) -> Result<(), KeeperError> {
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
    Ok(())
}

/// How many outputs a task has (a process: stdout and stderr).
pub(crate) fn out_count(spec: &pb::TaskSpec) -> u32 {
    match spec.executor {
        Some(pb::task_spec::Executor::Process(_)) => 2,
        _ => 1,
    }
}

/// Size of the keeper's in-memory task record (without its spec and outputs), for the
/// memory-per-queued-task figure in BENCHMARKS.md.
pub const fn task_struct_bytes() -> usize {
    std::mem::size_of::<Task>()
}
