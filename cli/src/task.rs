//! `gpunet task submit|status|cancel|get|list|watch|cluster|prove`: talk to a keeper as a
//! lease's user, through the SDK's task client (`gpunet_sdk::task`). The session is signed
//! with `--keypair` (the lease's user wallet, a Solana JSON keypair file).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use gpunet_sdk::task::{Client, pb, spec};
use serde_json::json;
use solana_sdk::pubkey::Pubkey;

use crate::Global;
use crate::output::{Output, Spinner};
use crate::runtime_env_file::RuntimeEnvFile;

/// Which keeper and lease.
#[derive(Args)]
pub struct Conn {
    /// Keeper URL; default: the endpoint the lease's keeper publishes on chain (`--url`).
    #[arg(long, global = true, env = "GPUNET_KEEPER_URL")]
    pub keeper: Option<String>,
    /// Lease: its account address (or an offline keeper's lease id, with `--keeper`).
    #[arg(long, global = true, env = "GPUNET_LEASE", default_value = "")]
    pub lease: String,
}

/// The keeper serving `lease`: `--keeper`, else the endpoint its keeper account publishes.
pub async fn keeper_of(g: &Global, conn: &Conn) -> Result<String> {
    if let Some(k) = &conn.keeper {
        return Ok(k.clone());
    }
    let Ok(address) = conn.lease.parse::<Pubkey>() else {
        bail!(
            "--keeper is required: {:?} is not a lease account address, so the chain cannot say \
             which keeper serves it",
            conn.lease
        );
    };
    let client = g.client();
    let lease = client
        .lease(&address)
        .await
        .map_err(|e| crate::chain::explain(e, "finding the lease's keeper"))?;
    if lease.keeper == Pubkey::default() {
        bail!(
            "lease {address} has no keeper yet: its committee is not drawn (`gpunet lease draw {address}`)"
        );
    }
    let keeper = client
        .fetch::<gpunet_sdk::Keeper>("keeper", &lease.keeper)
        .await
        .map_err(|e| crate::chain::explain(e, "finding the lease's keeper"))?;
    Ok(keeper.endpoint)
}

/// `gpunet task …`
#[derive(Subcommand)]
pub enum TaskCmd {
    /// Submit a task: a process (`-- argv…`) or a builtin (`--builtin NAME --payload P`).
    Submit(Box<SubmitArgs>),
    /// Status of tasks (ids; with `--cluster`, `LEASE.TASK` as submit printed them).
    Status { ids: Vec<String> },
    /// Cancel tasks (kills running processes' groups).
    Cancel { ids: Vec<String> },
    /// Wait for a task and print an output (0 = result/stdout, 1 = stderr).
    Get {
        id: String,
        #[arg(long, default_value_t = 0)]
        index: u32,
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
    },
    /// List tasks of the lease.
    List {
        /// Only this state (waiting, queued, running, finished, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Stream state changes (all tasks of the lease, or the given ones).
    Watch { ids: Vec<String> },
    /// Show the lease's cluster.
    Cluster,
    /// Run a benchmark proof on a worker of the lease's cluster and print the keeper's
    /// verdict (exits non-zero unless it verified).
    Prove {
        /// The worker (its id, as `task cluster` lists it).
        #[arg(long)]
        worker: String,
        /// Matrix side n (a power of two); default: the keeper's for this worker.
        #[arg(long)]
        n: Option<u32>,
        /// Rounds K; default: the keeper's for this worker.
        #[arg(long)]
        rounds: Option<u32>,
    },
}

/// A process task's runtime env, as a file and flags (`task submit`, `job submit`).
#[derive(Args)]
pub struct EnvArgs {
    /// Runtime env from a TOML file (working_dir, pip, pip_index_url, pip_no_index,
    /// [env_vars]; `docs/clusters.md`); the flags below add to it.
    #[arg(long, value_name = "FILE")]
    runtime_env: Option<std::path::PathBuf>,
    /// Runtime env: this folder becomes the task's working directory (files and folders, at
    /// most 3 MiB packed; cached on the worker by its hash).
    #[arg(long, value_name = "DIR")]
    working_dir: Option<std::path::PathBuf>,
    /// Runtime env: a Python package to install (pip specifier, or a wheel path relative to
    /// the working directory); repeatable. Built once per worker into a virtual environment.
    #[arg(long = "pip", value_name = "SPEC")]
    pip: Vec<String>,
    /// Runtime env: pip's package index URL (default: pip's).
    #[arg(long, value_name = "URL")]
    pip_index_url: Option<String>,
    /// Runtime env: no package index (local wheels only).
    #[arg(long)]
    pip_no_index: bool,
}

impl EnvArgs {
    /// The runtime env the file and flags describe, if any.
    pub fn runtime_env(&self) -> Result<Option<pb::RuntimeEnv>> {
        let file = match &self.runtime_env {
            Some(p) => RuntimeEnvFile::load(p)?,
            None => RuntimeEnvFile::default(),
        };
        file.merge(RuntimeEnvFile {
            working_dir: self.working_dir.clone(),
            pip: self.pip.clone(),
            pip_index_url: self.pip_index_url.clone(),
            pip_no_index: self.pip_no_index,
            env_vars: Default::default(),
        })
        .to_proto()
    }
}

/// `gpunet task submit`
#[derive(Args)]
pub struct SubmitArgs {
    /// Builtin executor instead of a process.
    #[arg(long)]
    builtin: Option<String>,
    /// Builtin payload.
    #[arg(long, default_value = "")]
    payload: String,
    /// GPUs.
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// CPUs.
    #[arg(long, default_value_t = 1.0)]
    cpus: f64,
    /// Environment entries KEY=VALUE.
    #[arg(long = "env")]
    env: Vec<String>,
    /// Wall-time limit, seconds.
    #[arg(long)]
    time_limit: Option<f64>,
    /// Memory limit, MiB.
    #[arg(long)]
    memory_limit_mib: Option<u64>,
    /// The process may open network connections (a sandboxed task has none otherwise).
    #[arg(long)]
    network: bool,
    #[command(flatten)]
    runtime: EnvArgs,
    /// Max retries after worker failure.
    #[arg(long)]
    max_retries: Option<u32>,
    /// Spread the copies over the workers, zones first (Ray's SPREAD).
    #[arg(long)]
    spread: bool,
    /// Only workers whose labels match LABEL=VALUE (also `!v`, `in(a,b)`, `!in(a,b)`), e.g.
    /// `--select zone=eu-west-1a`; repeatable (all must match).
    #[arg(long = "select", value_name = "LABEL=VALUE")]
    select: Vec<String>,
    /// Submit this many copies.
    #[arg(long, default_value_t = 1)]
    pub(crate) count: u32,
    /// Wait for completion (with progress) and print results.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Longest wait, seconds.
    #[arg(long, default_value_t = 600.0)]
    pub(crate) timeout: f64,
    /// Program and arguments.
    #[arg(last = true)]
    argv: Vec<String>,
}

/// A signed session on the lease `conn` names, with its keeper.
pub async fn connect(g: &Global, conn: &Conn) -> Result<Client> {
    if conn.lease.is_empty() {
        bail!("--lease (or GPUNET_LEASE) is required");
    }
    let key = g.signing_key()?;
    let keeper = keeper_of(g, conn).await?;
    Client::connect(&keeper, &conn.lease, &key)
        .await
        .with_context(|| {
            format!(
                "opening a session on lease {} with keeper {keeper}",
                conn.lease
            )
        })
}

/// `gpunet task …` on one lease (with `--cluster`, `crate::cluster_task` instead).
pub async fn run(g: &Global, conn: Conn, cmd: TaskCmd) -> Result<()> {
    let c = connect(g, &conn).await?;
    let out = g.output;
    match cmd {
        TaskCmd::Submit(a) => submit(&c, out, *a).await,
        TaskCmd::Status { ids } => {
            c.status(&ids_of(&ids)?)
                .await?
                .iter()
                .for_each(|s| print_status(out, s));
            Ok(())
        }
        TaskCmd::Cancel { ids } => cancel(&c, out, &ids_of(&ids)?).await,
        TaskCmd::Get { id, index, timeout } => {
            get(&c, out, ids_of(&[id])?[0], index, timeout).await
        }
        TaskCmd::List {
            state,
            after,
            limit,
        } => {
            let st = parse_state(state.as_deref())?;
            c.list(st, after, limit)
                .await?
                .iter()
                .for_each(|s| print_status(out, s));
            Ok(())
        }
        TaskCmd::Watch { ids } => {
            let mut w = c.watch(&ids_of(&ids)?).await?;
            while let Some(ev) = w.message().await? {
                if let Some(s) = ev.status {
                    print_status(out, &s);
                }
            }
            Ok(())
        }
        TaskCmd::Prove { worker, n, rounds } => prove(&c, out, &worker, n, rounds).await,
        TaskCmd::Cluster => cluster(&c, out).await,
    }
}

pub(crate) fn state_name(s: i32) -> &'static str {
    match pb::TaskState::try_from(s).unwrap_or(pb::TaskState::Unspecified) {
        pb::TaskState::Unspecified => "unknown",
        pb::TaskState::WaitingForDeps => "waiting",
        pb::TaskState::Queued => "queued",
        pb::TaskState::Running => "running",
        pb::TaskState::Finished => "finished",
        pb::TaskState::Failed => "failed",
        pb::TaskState::Cancelled => "cancelled",
    }
}

/// Task ids of one lease.
fn ids_of(ids: &[String]) -> Result<Vec<u64>> {
    ids.iter()
        .map(|s| {
            s.parse::<u64>().with_context(|| {
                format!("{s:?} is not a task id (tasks of a cluster, LEASE.TASK, take --cluster)")
            })
        })
        .collect()
}

pub(crate) fn parse_state(state: Option<&str>) -> Result<pb::TaskState> {
    Ok(match state {
        None => pb::TaskState::Unspecified,
        Some("waiting") => pb::TaskState::WaitingForDeps,
        Some("queued") => pb::TaskState::Queued,
        Some("running") => pb::TaskState::Running,
        Some("finished") => pb::TaskState::Finished,
        Some("failed") => pb::TaskState::Failed,
        Some("cancelled") => pb::TaskState::Cancelled,
        Some(o) => bail!("unknown state {o}"),
    })
}

pub(crate) fn status_json(s: &pb::TaskStatus) -> serde_json::Value {
    json!({
        "task_id": s.task_id,
        "state": state_name(s.state),
        "name": s.name,
        "attempts": s.attempts,
        "worker": s.worker_id,
        "error_kind": pb::ErrorKind::try_from(s.error_kind).map(|k| k.as_str_name()).unwrap_or("UNKNOWN"),
        "error": s.error,
        "exit_code": s.exit_code,
        "result_size": s.result_size,
        "progress": s.progress,
    })
}

pub(crate) fn print_status(out: Output, s: &pb::TaskStatus) {
    print_status_as(out, &s.task_id.to_string(), s)
}

/// A status line naming the task `id` (a cluster's `LEASE.TASK`, or the task id).
pub(crate) fn print_status_as(out: Output, id: &str, s: &pb::TaskStatus) {
    match out {
        Output::Json => {
            let mut v = status_json(s);
            if id != s.task_id.to_string() {
                v["task"] = json!(id);
            }
            println!("{v}")
        }
        Output::Table => {
            let mut line = format!(
                "{:>8}  {:<9}  attempts={}  {}",
                id,
                state_name(s.state),
                s.attempts,
                s.name
            );
            if !s.worker_id.is_empty() {
                line.push_str(&format!("  worker={}", s.worker_id));
            }
            if let Some(c) = s.exit_code {
                line.push_str(&format!("  exit={c}"));
            }
            if !s.progress.is_empty() {
                line.push_str(&format!("  ({})", s.progress));
            }
            if !s.error.is_empty() {
                line.push_str(&format!("  error: {}", s.error));
            }
            println!("{line}");
        }
    }
}

/// The task spec `gpunet task submit` describes.
pub(crate) fn build_spec(a: &SubmitArgs) -> Result<pb::TaskSpec> {
    let mut s = match &a.builtin {
        Some(name) => spec::builtin(name, a.payload.clone().into_bytes()),
        None => {
            if a.argv.is_empty() {
                bail!("give a program after `--`, or --builtin NAME");
            }
            let refs: Vec<&str> = a.argv.iter().map(|s| s.as_str()).collect();
            let mut s = spec::process(&refs);
            if let Some(pb::task_spec::Executor::Process(p)) = s.executor.as_mut() {
                for e in &a.env {
                    let (k, v) = e.split_once('=').context("--env takes KEY=VALUE")?;
                    p.env.insert(k.to_string(), v.to_string());
                }
                p.time_limit_ms = a.time_limit.map(|t| (t * 1000.0) as u64).unwrap_or(0);
                p.memory_limit_bytes = a.memory_limit_mib.unwrap_or(0) << 20;
                p.network = a.network;
                p.runtime_env = a.runtime.runtime_env()?;
            }
            s
        }
    };
    s.resources = Some(spec::resources((a.cpus * 1000.0) as u32, a.gpus));
    s.max_retries = a.max_retries;
    if a.spread {
        s.strategy = Some(pb::SchedulingStrategy {
            kind: Some(pb::scheduling_strategy::Kind::Spread(pb::SpreadStrategy {})),
        });
    }
    for e in &a.select {
        let (k, v) = e
            .split_once('=')
            .context("--select takes LABEL=VALUE (VALUE: v, !v, in(a,b), !in(a,b))")?;
        s.label_selector.insert(k.to_string(), v.to_string());
    }
    Ok(s)
}

async fn submit(c: &Client, out: Output, a: SubmitArgs) -> Result<()> {
    let spec = build_spec(&a)?;
    let ids = c.submit(vec![spec; a.count.max(1) as usize]).await?;
    if !a.wait {
        match out {
            Output::Json => println!("{}", json!({ "task_ids": ids })),
            Output::Table => ids.iter().for_each(|id| println!("{id}")),
        }
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(ids.len() as u64);
    bar.set_message("running");
    // What the tasks report before they start (their runtime env building) shows on the bar.
    if let Ok(mut w) = c.watch(&ids).await {
        let bar = bar.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = w.message().await {
                if let Some(s) = ev.status
                    && !s.progress.is_empty()
                {
                    bar.set_message(format!("task {}: {}", s.task_id, s.progress));
                }
            }
        });
    }
    let mut failed = false;
    for id in &ids {
        let r = c.get(*id, 0, Duration::from_secs_f64(a.timeout)).await?;
        bar.inc(1);
        let st = r.status.unwrap_or_default();
        failed |= st.state != pb::TaskState::Finished as i32;
        bar.suspend(|| match out {
            Output::Json => {
                let mut v = status_json(&st);
                v["output"] = json!(String::from_utf8_lossy(&r.data));
                println!("{v}");
            }
            Output::Table => {
                print_status(out, &st);
                if !r.data.is_empty() {
                    print!("{}", String::from_utf8_lossy(&r.data));
                }
            }
        });
    }
    bar.finish_and_clear();
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

async fn cancel(c: &Client, out: Output, ids: &[u64]) -> Result<()> {
    let r = c.cancel(ids).await?;
    for (id, ok) in ids.iter().zip(r) {
        match out {
            Output::Json => println!("{}", json!({ "task_id": id, "cancelled": ok })),
            Output::Table => {
                println!("{id}: {}", if ok { "cancelled" } else { "already done" })
            }
        }
    }
    Ok(())
}

async fn get(c: &Client, out: Output, id: u64, index: u32, timeout: f64) -> Result<()> {
    let sp = Spinner::start(out, format!("waiting for task {id}"));
    let r = c.get(id, index, Duration::from_secs_f64(timeout)).await;
    sp.stop();
    let r = r?;
    let st = r.status.unwrap_or_default();
    match out {
        Output::Json => {
            let mut v = status_json(&st);
            v["ready"] = json!(r.ready);
            v["output"] = json!(String::from_utf8_lossy(&r.data));
            println!("{v}");
        }
        Output::Table => {
            if !r.ready || st.state != pb::TaskState::Finished as i32 {
                print_status(out, &st);
                std::process::exit(1);
            }
            std::io::stdout().write_all(&r.data)?;
        }
    }
    Ok(())
}

fn verdict_json(v: &pb::ProofVerdict) -> serde_json::Value {
    json!({
        "verdict": v.verdict().label(),
        "stage": v.stage().label(),
        "ok": v.ok,
        "rejection": v.rejection,
        "reason": v.reason,
        "digest": hex::encode(&v.digest),
        "measured_tops": v.measured_tops,
        "required_tops": v.required_tops,
        "gpu_class": v.gpu_class,
        "worker_id": v.worker_id,
        "lease_id": v.lease_id,
        "task_id": v.task_id,
        "n": v.n,
        "rounds": v.rounds,
        "rounds_received": v.rounds_received,
        "tiles_checked": v.tiles_checked,
        "elapsed_ms": v.elapsed_ms,
    })
}

async fn prove(
    c: &Client,
    out: Output,
    worker: &str,
    n: Option<u32>,
    rounds: Option<u32>,
) -> Result<()> {
    let sp = Spinner::start(out, format!("proving worker {worker}"));
    let v = c.prove(worker, n, rounds).await;
    sp.stop();
    let v = v?;
    match out {
        Output::Json => println!("{}", verdict_json(&v)),
        Output::Table => {
            if v.ok {
                println!(
                    "verified: {:.3} TOP/s (class {} needs {:.1}), n={} K={}, {} tiles checked",
                    v.measured_tops, v.gpu_class, v.required_tops, v.n, v.rounds, v.tiles_checked
                );
            } else {
                let why = if v.rejection.is_empty() {
                    v.stage().label()
                } else {
                    v.rejection.as_str()
                };
                println!("{} ({why}): {}", v.verdict().label(), v.reason);
            }
            if !v.digest.is_empty() {
                println!("transcript digest {}", hex::encode(&v.digest));
            }
            println!("proof task {} on worker {}", v.task_id, v.worker_id);
        }
    }
    if !v.ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn cluster(c: &Client, out: Output) -> Result<()> {
    let cl = c.cluster().await?;
    match out {
        Output::Json => {
            let workers: Vec<_> = cl
                .workers
                .iter()
                .map(|w| {
                    json!({
                        "id": w.worker_id, "zone": w.zone, "gpus": w.gpus.len(), "cpu_only": w.cpu_only,
                        "running": w.running_tasks, "draining": w.draining,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({
                    "lease": cl.lease_id, "provider": cl.provider, "state": cl.state().label(),
                    "gpus_requested": cl.gpus_requested, "gpus_ready": cl.gpus_ready,
                    "workers": workers,
                })
            );
        }
        Output::Table => {
            println!(
                "lease {} ({}): {} — {}/{} GPUs",
                cl.lease_id,
                cl.provider,
                cl.state().label(),
                cl.gpus_ready,
                cl.gpus_requested
            );
            for w in cl.workers {
                let mode = if w.cpu_only {
                    " (declared, CPU-only mode)"
                } else {
                    ""
                };
                println!(
                    "  {}  gpus={}{mode}  running={}",
                    w.worker_id,
                    w.gpus.len(),
                    w.running_tasks
                );
            }
        }
    }
    Ok(())
}
