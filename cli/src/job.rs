//! `gpunet job submit|logs|stop|list` (Ray's Jobs CLI): a job is a driver process on a lease's
//! cluster — a process task with its runtime env that streams its output to the keeper while
//! it runs, is not retried behind the user's back, and is named `job:<name>` so that `job list`
//! finds it among the lease's tasks.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use gpunet_sdk::task::{Client, pb, spec};
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
        id: u64,
        #[arg(long, short)]
        follow: bool,
    },
    /// Stop a job (its whole process group is killed).
    Stop { id: u64 },
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

/// `gpunet job …`
pub async fn run(g: &Global, conn: Conn, cmd: JobCmd) -> Result<()> {
    let c = connect(g, &conn).await?;
    match cmd {
        JobCmd::Submit(a) => {
            let follow = a.follow;
            let id = submit(&c, a).await?;
            match g.output {
                Output::Json if !follow => println!("{}", json!({ "job_id": id })),
                Output::Json => {}
                Output::Table => eprintln!("job {id} submitted"),
            }
            if follow {
                return logs(&c, g.output, id, true).await;
            }
            Ok(())
        }
        JobCmd::Logs { id, follow } => logs(&c, g.output, id, follow).await,
        JobCmd::Stop { id } => {
            let stopped = c.cancel(&[id]).await?.first().copied().unwrap_or(false);
            match g.output {
                Output::Json => println!("{}", json!({ "job_id": id, "stopped": stopped })),
                Output::Table if stopped => println!("job {id} stopped"),
                Output::Table => println!("job {id} had already ended"),
            }
            Ok(())
        }
        JobCmd::List => list(&c, g.output).await,
    }
}

async fn submit(c: &Client, a: SubmitArgs) -> Result<u64> {
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
    Ok(c.submit(vec![s]).await?[0])
}

/// Prints job `id`'s log (stdout to stdout, stderr to stderr); with `follow`, until it ends,
/// then exits with status 1 if it failed. A job whose live log is gone (the keeper restarted,
/// or it ended long ago) shows its captured outputs instead.
async fn logs(c: &Client, out: Output, id: u64, follow: bool) -> Result<()> {
    let mut stream = c.logs(id, 0, follow).await?;
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
            let r = c.get(id, index, Duration::from_secs(5)).await?;
            sink.write_all(&r.data)?;
        }
    }
    let ok = status.state == pb::TaskState::Finished as i32;
    match out {
        Output::Json => println!("{}", json!({ "job_id": id, "end": status_json(&status) })),
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

async fn list(c: &Client, out: Output) -> Result<()> {
    let mut jobs = Vec::new();
    let mut after = 0;
    loop {
        let page = c.list(pb::TaskState::Unspecified, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.task_id;
        jobs.extend(page.into_iter().filter(|s| s.name.starts_with(JOB)));
    }
    match out {
        Output::Json => println!(
            "{}",
            json!(jobs.iter().map(status_json).collect::<Vec<_>>())
        ),
        Output::Table => {
            for s in &jobs {
                let name = s.name.strip_prefix(JOB).unwrap_or(&s.name);
                let exit = s
                    .exit_code
                    .map(|c| format!("  exit={c}"))
                    .unwrap_or_default();
                println!("{:>8}  {:<9}  {name}{exit}", s.task_id, state_name(s.state));
            }
        }
    }
    Ok(())
}
