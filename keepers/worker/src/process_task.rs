//! A process task on this worker: its working directory and limits, the provider's network
//! rule, its runtime env built first (progress to the keeper), its output streamed when it
//! asks, then [`exec::process`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use pb::worker_message::Msg as Up;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cgroup::{TaskCgroup, TaskLimits};
use crate::{Shared, exec, runtime_env};

/// Runs assignment `a`'s process task `p` with `stdin`.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    a: &pb::Assignment,
    p: &pb::ProcessTask,
    stdin: Bytes,
    ct: &CancellationToken,
    up: &mpsc::UnboundedSender<pb::WorkerMessage>,
) -> exec::ExecOutcome {
    let dir = shared
        .cfg
        .work_dir
        .join(format!("task-{}-{}", a.task_id, a.attempt));
    let limits = exec::ProcessLimits {
        time: if p.time_limit_ms > 0 {
            Duration::from_millis(p.time_limit_ms)
        } else {
            shared.cfg.default_time_limit
        },
        memory: p.memory_limit_bytes,
    };
    if p.network && !shared.cfg.allow_network {
        return exec::ExecOutcome {
            kind: pb::ErrorKind::Invalid as i32,
            error: "the task asks for the network; this provider's workers give tasks none".into(),
            ..Default::default()
        };
    }
    let cgroup = match task_cgroup(shared, a, p) {
        Ok(c) => c,
        Err(out) => return out,
    };
    match build_env(shared, (a.task_id, a.attempt), p, &dir, ct, up).await {
        Ok(env) => {
            let with = exec::RunWith {
                sandbox: shared.sandbox.as_ref(),
                env: env.as_ref(),
                log: p.stream_logs.then(|| log_tap((a.task_id, a.attempt), up)),
                cgroup: cgroup.as_ref(),
            };
            let out = exec::process(p, stdin, &a.gpu_ids, &dir, limits, &with, ct).await;
            // Emptied and removed beside the result, not before it.
            if let Some(cg) = cgroup {
                tokio::spawn(cg.finish());
            }
            out
        }
        Err(out) => {
            let _ = std::fs::remove_dir_all(&dir);
            out
        }
    }
}

/// The task's cgroup, when the worker makes them: memory capped at its `memory_limit_bytes`,
/// else at the memory it reserved; CPU at what it reserved.
fn task_cgroup(
    shared: &Shared,
    a: &pb::Assignment,
    p: &pb::ProcessTask,
) -> Result<Option<TaskCgroup>, exec::ExecOutcome> {
    let Some(cgroups) = &shared.cgroups else {
        return Ok(None);
    };
    let res = a
        .spec
        .as_ref()
        .and_then(|s| s.resources.clone())
        .unwrap_or(pb::Resources {
            milli_cpus: 1000,
            ..Default::default()
        });
    let memory = [p.memory_limit_bytes, res.memory_bytes]
        .into_iter()
        .find(|m| *m > 0);
    cgroups
        .create(
            &format!("{}-{}", a.task_id, a.attempt),
            TaskLimits {
                memory,
                milli_cpus: res.milli_cpus,
            },
        )
        .map(Some)
        .map_err(|e| exec::ExecOutcome {
            kind: pb::ErrorKind::Invalid as i32,
            error: format!("cannot make the task's cgroup: {e}"),
            ..Default::default()
        })
}

/// Most of a task's output streamed live to the keeper (its outputs keep the first
/// `MAX_CAPTURE` bytes either way): a task printing without end does not flood the stream.
const MAX_STREAMED_LOG: usize = 64 << 20;

/// Sends a running task's output to the keeper as it comes (`TaskLog`), up to
/// [`MAX_STREAMED_LOG`] bytes, then one line saying the rest was cut.
fn log_tap(
    (task_id, attempt): (u64, u32),
    up: &mpsc::UnboundedSender<pb::WorkerMessage>,
) -> exec::LogTap {
    let up = up.clone();
    let sent = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move |stream: u32, data: &[u8]| {
        let before = sent.fetch_add(data.len(), Ordering::Relaxed);
        let data = if before + data.len() <= MAX_STREAMED_LOG {
            Bytes::copy_from_slice(data)
        } else if before <= MAX_STREAMED_LOG {
            Bytes::from_static(b"\n[gpunet] log cut: the rest is not streamed\n")
        } else {
            return;
        };
        let _ = up.send(pb::WorkerMessage {
            msg: Some(Up::Log(pb::TaskLog {
                task_id,
                attempt,
                stream,
                data,
            })),
        });
    })
}

/// Builds a process task's runtime env (if it names one) and puts its working directory in
/// `dir`, telling the keeper each step; a failure is the task's outcome.
async fn build_env(
    shared: &Arc<Shared>,
    (task_id, attempt): (u64, u32),
    p: &pb::ProcessTask,
    dir: &std::path::Path,
    ct: &CancellationToken,
    up: &mpsc::UnboundedSender<pb::WorkerMessage>,
) -> Result<Option<runtime_env::Prepared>, exec::ExecOutcome> {
    let Some(env) = &p.runtime_env else {
        return Ok(None);
    };
    let fail = |kind: pb::ErrorKind, error: String| exec::ExecOutcome {
        kind: kind as i32,
        error,
        ..Default::default()
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(
            pb::ErrorKind::Invalid,
            format!("cannot create working directory: {e}"),
        )
    })?;
    let up = up.clone();
    let progress = move |message: String| {
        info!(task = task_id, %message, "runtime env");
        let _ = up.send(pb::WorkerMessage {
            msg: Some(Up::Progress(pb::TaskProgress {
                task_id,
                attempt,
                message,
            })),
        });
    };
    tokio::select! {
        r = shared.envs.prepare(env, dir, &progress) => r
            .map(Some)
            .map_err(|e| fail(pb::ErrorKind::RuntimeEnv, format!("runtime env: {e}"))),
        _ = ct.cancelled() => Err(fail(pb::ErrorKind::Cancelled, "cancelled while its runtime env was being built".into())),
    }
}
