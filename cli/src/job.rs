//! `gpunet job submit|logs|stop|list` (Ray's Jobs CLI): a job is a driver process on a lease's
//! cluster — a process task with its runtime env that streams its output to the keeper while
//! it runs, is not retried behind the user's back, and is named `job:<name>` so that `job list`
//! finds it among the lease's tasks. With `--cluster ID` it goes to one of the cluster's leases
//! (`gpunet_sdk::task::cluster`) and is named `LEASE.TASK`.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use gpunet_sdk::task::cluster::{ClusterClient, TaskRef};
use gpunet_sdk::task::{Client, Streaming, pb, spec};
use serde_json::json;

use crate::Global;
use crate::output::Output;
use crate::task::{Conn, EnvArgs, connect, print_status, state_name, status_json};

/// The name prefix that marks a task as a job.
const JOB: &str = "job:";

/// `gpunet job …`
#[derive(Subcommand)]
pub enum JobCmd {
    /// Start a driver process on the lease's cluster (`-- python train.py`).
    Submit(SubmitArgs),
    /// A job's output: what it printed so far, or (`--follow`) live until it ends.
    Logs {
        /// The job (with `--cluster`: LEASE.TASK).
        id: String,
        #[arg(long, short)]
        follow: bool,
    },
    /// Stop a job (its whole process group is killed).
    Stop {
        /// The job (with `--cluster`: LEASE.TASK).
        id: String,
    },
    /// The lease's jobs, newest last.
    List,
}

/// `gpunet job submit`
#[derive(Args)]
pub struct SubmitArgs {
    /// A name for listings (default: the program's).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    runtime: EnvArgs,
    /// Environment entries KEY=VALUE.
    #[arg(long = "env")]
    env: Vec<String>,
    /// GPUs for the driver.
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// CPUs for the driver.
    #[arg(long, default_value_t = 1.0)]
    cpus: f64,
    /// Wall-time limit, seconds.
    #[arg(long, default_value_t = 86_400.0)]
    time_limit: f64,
    /// The driver may open network connections.
    #[arg(long)]
    network: bool,
    /// Follow its logs right away, until it ends (exit status: the job's).
    #[arg(long, short)]
    follow: bool,
    /// Program and arguments.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

/// Where jobs run: one lease, or a cluster of leases.
pub enum On {
    /// A session on one lease.
    Lease(Client),
    /// The leases of a cluster.
    Cluster(ClusterClient),
}

/// A job's id: the task's on its lease, or `LEASE.TASK` on a cluster.
#[derive(Clone, Copy)]
enum JobId {
    Lease(u64),
    Cluster(TaskRef),
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobId::Lease(t) => write!(f, "{t}"),
            JobId::Cluster(r) => write!(f, "{r}"),
        }
    }
}

impl JobId {
    fn json(self) -> serde_json::Value {
        match self {
            JobId::Lease(t) => json!(t),
            JobId::Cluster(r) => json!(r.to_string()),
        }
    }
}

impl On {
    fn parse(&self, id: &str) -> Result<JobId> {
        match self {
            On::Lease(_) => id.parse().map(JobId::Lease).with_context(|| {
                format!("{id:?} is not a job id (jobs of a cluster, LEASE.TASK, take --cluster)")
            }),
            On::Cluster(_) => id.parse().map(JobId::Cluster).map_err(anyhow::Error::msg),
        }
    }

    async fn submit(&self, s: pb::TaskSpec) -> Result<JobId> {
        Ok(match self {
            On::Lease(c) => JobId::Lease(c.submit(vec![s]).await?[0]),
            On::Cluster(c) => JobId::Cluster(c.submit(vec![s]).await?[0]),
        })
    }

    async fn logs(&self, id: JobId, follow: bool) -> Result<Streaming<pb::LogChunk>> {
        Ok(match (self, id) {
            (On::Lease(c), JobId::Lease(t)) => c.logs(t, 0, follow).await?,
            (On::Cluster(c), JobId::Cluster(r)) => c.logs(r, 0, follow).await?,
            _ => bail!("job {id}: not of this kind"),
        })
    }

    async fn get(&self, id: JobId, index: u32) -> Result<pb::GetResponse> {
        let wait = Duration::from_secs(5);
        Ok(match (self, id) {
            (On::Lease(c), JobId::Lease(t)) => c.get(t, index, wait).await?,
            (On::Cluster(c), JobId::Cluster(r)) => c.get(r, index, wait).await?,
            _ => bail!("job {id}: not of this kind"),
        })
    }

    async fn cancel(&self, id: JobId) -> Result<bool> {
        let done = match (self, id) {
            (On::Lease(c), JobId::Lease(t)) => c.cancel(&[t]).await?,
            (On::Cluster(c), JobId::Cluster(r)) => c.cancel(&[r]).await?,
            _ => bail!("job {id}: not of this kind"),
        };
        Ok(done.first().copied().unwrap_or(false))
    }

    /// Every task of the lease or cluster.
    async fn tasks(&self) -> Result<Vec<(JobId, pb::TaskStatus)>> {
        match self {
            On::Lease(c) => {
                let mut out = Vec::new();
                let mut after = 0;
                loop {
                    let page = c.list(pb::TaskState::Unspecified, after, 1000).await?;
                    let Some(last) = page.last() else { break };
                    after = last.task_id;
                    out.extend(page.into_iter().map(|s| (JobId::Lease(s.task_id), s)));
                }
                Ok(out)
            }
            On::Cluster(c) => Ok(c
                .list(pb::TaskState::Unspecified, 100_000)
                .await?
                .into_iter()
                .map(|(r, s)| (JobId::Cluster(r), s))
                .collect()),
        }
    }
}

/// `gpunet job …` (`cluster`: the jobs of a cluster instead of one lease's).
pub async fn run(g: &Global, conn: Conn, cluster: Option<u32>, cmd: JobCmd) -> Result<()> {
    let on = match cluster {
        Some(_) if !conn.lease.is_empty() => bail!("give --lease or --cluster, not both"),
        Some(id) => {
            let mut c = crate::cluster_task::connect(g, id).await?;
            // A driver may have side effects: never started twice behind the user's back.
            c.failover_after = Duration::MAX;
            On::Cluster(c)
        }
        None => On::Lease(connect(g, &conn).await?),
    };
    match cmd {
        JobCmd::Submit(a) => {
            let follow = a.follow;
            let id = on.submit(spec_of(a)?).await?;
            match g.output {
                Output::Json if !follow => println!("{}", json!({ "job_id": id.json() })),
                Output::Json => {}
                Output::Table => eprintln!("job {id} submitted"),
            }
            if follow {
                return logs(&on, g.output, id, true).await;
            }
            Ok(())
        }
        JobCmd::Logs { id, follow } => logs(&on, g.output, on.parse(&id)?, follow).await,
        JobCmd::Stop { id } => {
            let id = on.parse(&id)?;
            let stopped = on.cancel(id).await?;
            match g.output {
                Output::Json => println!("{}", json!({ "job_id": id.json(), "stopped": stopped })),
                Output::Table if stopped => println!("job {id} stopped"),
                Output::Table => println!("job {id} had already ended"),
            }
            Ok(())
        }
        JobCmd::List => list(&on, g.output).await,
    }
}

/// The driver's task spec.
fn spec_of(a: SubmitArgs) -> Result<pb::TaskSpec> {
    if a.time_limit <= 0.0 {
        bail!("--time-limit: a positive number of seconds");
    }
    let refs: Vec<&str> = a.argv.iter().map(String::as_str).collect();
    let mut s = spec::process(&refs);
    let name = a.name.clone().unwrap_or_else(|| {
        std::path::Path::new(&a.argv[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    s.name = format!("{JOB}{name}");
    if let Some(pb::task_spec::Executor::Process(p)) = s.executor.as_mut() {
        for e in &a.env {
            let (k, v) = e.split_once('=').context("--env takes KEY=VALUE")?;
            p.env.insert(k.to_string(), v.to_string());
        }
        p.time_limit_ms = (a.time_limit * 1000.0) as u64;
        p.network = a.network;
        p.stream_logs = true;
        p.runtime_env = a.runtime.runtime_env()?;
    }
    s.resources = Some(spec::resources((a.cpus * 1000.0) as u32, a.gpus));
    // A driver that died is the user's to restart: it may have side effects.
    s.max_retries = Some(0);
    Ok(s)
}

/// Prints job `id`'s log (stdout to stdout, stderr to stderr); with `follow`, until it ends,
/// then exits with status 1 if it failed. A job whose live log is gone (the keeper restarted,
/// or it ended long ago) shows its captured outputs instead.
async fn logs(on: &On, out: Output, id: JobId, follow: bool) -> Result<()> {
    let mut stream = on.logs(id, follow).await?;
    let mut seen = 0u64;
    let mut end: Option<pb::TaskStatus> = None;
    while let Some(chunk) = stream.message().await? {
        if chunk.eof {
            end = chunk.status;
            break;
        }
        seen += chunk.data.len() as u64;
        match out {
            Output::Json => println!(
                "{}",
                json!({
                    "offset": chunk.offset,
                    "stream": if chunk.stream == 1 { "stderr" } else { "stdout" },
                    "data": String::from_utf8_lossy(&chunk.data),
                })
            ),
            Output::Table if chunk.stream == 1 => std::io::stderr().write_all(&chunk.data)?,
            Output::Table => {
                let mut o = std::io::stdout();
                o.write_all(&chunk.data)?;
                o.flush()?;
            }
        }
    }
    let Some(status) = end else {
        return Ok(());
    };
    if seen == 0 {
        // Nothing live: the captured stdout and stderr.
        for (index, mut sink) in [
            (0, Box::new(std::io::stdout()) as Box<dyn Write>),
            (1, Box::new(std::io::stderr())),
        ] {
            let r = on.get(id, index).await?;
            sink.write_all(&r.data)?;
        }
    }
    let ok = status.state == pb::TaskState::Finished as i32;
    match out {
        Output::Json => println!(
            "{}",
            json!({ "job_id": id.json(), "end": status_json(&status) })
        ),
        Output::Table => {
            if !ok {
                print_status(out, &status);
            }
        }
    }
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn list(on: &On, out: Output) -> Result<()> {
    let jobs: Vec<(JobId, pb::TaskStatus)> = on
        .tasks()
        .await?
        .into_iter()
        .filter(|(_, s)| s.name.starts_with(JOB))
        .collect();
    match out {
        Output::Json => println!(
            "{}",
            json!(
                jobs.iter()
                    .map(|(id, s)| {
                        let mut v = status_json(s);
                        v["job_id"] = id.json();
                        v
                    })
                    .collect::<Vec<_>>()
            )
        ),
        Output::Table => {
            for (id, s) in &jobs {
                let name = s.name.strip_prefix(JOB).unwrap_or(&s.name);
                let exit = s
                    .exit_code
                    .map(|c| format!("  exit={c}"))
                    .unwrap_or_default();
                println!(
                    "{:>8}  {:<9}  {name}{exit}",
                    id.to_string(),
                    state_name(s.state)
                );
            }
        }
    }
    Ok(())
}
