//! `gpunet`: the one command users type.
//!
//! - `gpunet localnet [--ledger DIR]` — the whole chain on this machine (embedded surfpool with
//!   gpunet loaded), initialised on first start.
//! - `gpunet config init|show`, `gpunet keeper register|show|list`,
//!   `gpunet provider register|update|stake|unstake|withdraw|show|list`,
//!   `gpunet lease open|top-up|close|show|list`, `gpunet faucet` — the chain, with the Solana
//!   CLI's `--url` and `--keypair` conventions and `--output json`.
//! - `gpunet keeper run [--config keeper.toml]` — run a keeper (config: see
//!   `gpunet_keeper::config`; `GPUNET_KEEPER_*` env overrides).
//! - `gpunet worker run --keeper URL --provider P --key-file F [--gpus N]` — run a worker.
//! - `gpunet task submit|status|cancel|get|list|watch|cluster|prove` — talk to a keeper as a
//!   lease's user (`prove`: a benchmark proof of one worker, with the keeper's verdict).
//! - `gpunet key generate --out FILE` — make an ed25519 key file (base58 secret).
//!
//! Every task command takes `--output json` for machine-readable output.

mod bench;
mod chain;
mod localnet;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ed25519_dalek::SigningKey;
use gpunet_keeper::client::{Client, task};
use gpunet_proto::v1 as pb;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "gpunet",
    version,
    about = "gpunet: permissionless GPU cloud settled on Solana"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole chain on this machine: JSON-RPC on 8899, pubsub on 8900.
    Localnet {
        #[command(flatten)]
        chain: chain::ChainOpts,
        #[command(flatten)]
        args: localnet::LocalnetArgs,
    },
    /// Protocol config (admin).
    Config {
        #[command(flatten)]
        chain: chain::ChainOpts,
        #[command(subcommand)]
        cmd: chain::ConfigCmd,
    },
    /// GPU providers: register, stake, unstake, withdraw.
    Provider {
        #[command(flatten)]
        chain: chain::ChainOpts,
        #[command(subcommand)]
        cmd: chain::ProviderCmd,
    },
    /// Leases: open, top up, close.
    Lease {
        #[command(flatten)]
        chain: chain::ChainOpts,
        #[command(subcommand)]
        cmd: chain::LeaseCmd,
    },
    /// Localnet faucet: SOL by airdrop, tokens from the mint authority (the signer).
    Faucet {
        #[command(flatten)]
        chain: chain::ChainOpts,
        /// Wallet to fund.
        wallet: solana_sdk::pubkey::Pubkey,
        /// SOL to airdrop.
        #[arg(long, default_value_t = 10)]
        sol: u64,
        /// Token base units to mint.
        #[arg(long, default_value_t = 0)]
        tokens: u64,
    },
    /// Keepers: on-chain registration, and the keeper daemon.
    Keeper {
        #[command(flatten)]
        chain: chain::ChainOpts,
        #[command(subcommand)]
        cmd: KeeperCmd,
    },
    /// Worker agent.
    Worker {
        #[command(subcommand)]
        cmd: WorkerCmd,
    },
    /// Tasks on a lease's cluster.
    Task {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        cmd: TaskCmd,
    },
    /// Side-by-side benchmark client (used by bench/run.sh).
    #[command(hide = true)]
    Bench {
        #[command(flatten)]
        conn: Conn,
        /// Scale the task counts.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Clients in the multi-client workload.
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// Keys.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
}

#[derive(Subcommand)]
enum KeeperCmd {
    /// Bond the configured amount, publish the keeper's endpoint and join the on-chain keeper set.
    Register {
        /// The keeper's public gRPC URL (users and workers find it on chain).
        #[arg(long, default_value = "http://127.0.0.1:7400")]
        endpoint: String,
    },
    /// Publish a new gRPC endpoint for the signer's keeper.
    Update {
        /// The keeper's public gRPC URL.
        #[arg(long)]
        endpoint: String,
    },
    /// Stop taking new leases; the keeper's leases pass to their successors, then
    /// `keeper deregister` starts the unbonding.
    Drain,
    /// Leave the keeper set once no lease is left (the bond comes back after unbonding).
    Deregister,
    /// Show a keeper's on-chain account (default: the signer's).
    Show {
        /// Keeper wallet.
        wallet: Option<solana_sdk::pubkey::Pubkey>,
    },
    /// List on-chain keepers.
    List,
    /// Run a keeper until SIGINT/SIGTERM.
    Run {
        /// TOML config (defaults apply without one).
        #[arg(long, env = "GPUNET_KEEPER_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum WorkerCmd {
    /// Run a worker until SIGINT/SIGTERM (then it drains).
    Run(WorkerArgs),
}

#[derive(Args)]
struct WorkerArgs {
    /// Keeper URL.
    #[arg(
        long,
        env = "GPUNET_KEEPER_URL",
        default_value = "http://127.0.0.1:7400"
    )]
    keeper: String,
    /// Provider this worker serves.
    #[arg(long, env = "GPUNET_PROVIDER")]
    provider: String,
    /// The worker's key file (base58 ed25519 secret).
    #[arg(long, env = "GPUNET_WORKER_KEY")]
    key_file: PathBuf,
    /// Declare this many GPUs instead of discovering them (CPU-only mode).
    #[arg(long)]
    gpus: Option<u32>,
    /// Model name of declared GPUs.
    #[arg(long, default_value = "cpu-declared")]
    gpu_model: String,
    /// CPUs offered.
    #[arg(long, default_value_t = 4.0)]
    cpus: f64,
    /// Memory offered, GiB.
    #[arg(long, default_value_t = 16)]
    memory_gib: u64,
    /// Zone label.
    #[arg(long, default_value = "")]
    zone: String,
    /// Working directory root for process tasks.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Do not offer lanes: the keeper then sends one task per free slot instead of queueing
    /// short tasks on this worker ahead of time (pipelining).
    #[arg(long)]
    no_lanes: bool,
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Write a new key file and print its public key.
    Generate {
        /// Where to write the secret.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of a key file.
    Pubkey {
        /// Key file.
        key_file: PathBuf,
    },
}

#[derive(Args)]
struct Conn {
    /// Keeper URL.
    #[arg(
        long,
        global = true,
        env = "GPUNET_KEEPER_URL",
        default_value = "http://127.0.0.1:7400"
    )]
    keeper: String,
    /// Lease id.
    #[arg(long, global = true, env = "GPUNET_LEASE", default_value = "")]
    lease: String,
    /// The lease user's key file.
    #[arg(long, global = true, env = "GPUNET_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum TaskCmd {
    /// Submit a task: a process (`-- argv…`) or a builtin (`--builtin NAME --payload P`).
    Submit {
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
        /// Max retries after worker failure.
        #[arg(long)]
        max_retries: Option<u32>,
        /// Submit this many copies.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Wait for completion (with progress) and print results.
        #[arg(long)]
        wait: bool,
        /// Longest wait, seconds.
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
        /// Program and arguments.
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// Status of tasks.
    Status { ids: Vec<u64> },
    /// Cancel tasks (kills running processes' groups).
    Cancel { ids: Vec<u64> },
    /// Wait for a task and print an output (0 = result/stdout, 1 = stderr).
    Get {
        id: u64,
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
    Watch { ids: Vec<u64> },
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

fn read_key(path: &PathBuf) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    let bytes = bs58::decode(text.trim())
        .into_vec()
        .context("key file is not base58")?;
    let seed: [u8; 32] = bytes
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .context("key file must hold a 32- or 64-byte secret")?;
    Ok(SigningKey::from_bytes(&seed))
}

fn state_name(s: i32) -> &'static str {
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

fn status_json(s: &pb::TaskStatus) -> serde_json::Value {
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
    })
}

fn print_status(out: Output, s: &pb::TaskStatus) {
    match out {
        Output::Json => println!("{}", status_json(s)),
        Output::Text => {
            let mut line = format!(
                "{:>8}  {:<9}  attempts={}  {}",
                s.task_id,
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
            if !s.error.is_empty() {
                line.push_str(&format!("  error: {}", s.error));
            }
            println!("{line}");
        }
    }
}

fn verdict_json(v: &pb::ProofVerdict) -> serde_json::Value {
    let hex: String = v.digest.iter().map(|b| format!("{b:02x}")).collect();
    json!({
        "verdict": v.verdict().label(),
        "stage": v.stage().label(),
        "ok": v.ok,
        "rejection": v.rejection,
        "reason": v.reason,
        "digest": hex,
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

fn spinner(msg: String) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

async fn shutdown_signal(cancel: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    cancel.cancel();
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GPUNET_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The keeper serves many connections: a multi-threaded runtime. Workers, clients and the
    // bench client are mostly waiting on one stream: a single-threaded runtime avoids
    // cross-thread wake-ups (measurably lower round-trip latency on a 2-core machine).
    let rt = match cli.cmd {
        Cmd::Keeper {
            cmd: KeeperCmd::Run { .. },
            ..
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Localnet { chain, args } => localnet::run(&chain, args).await?,
        Cmd::Config { chain, cmd } => chain::run_config(&chain, cmd).await?,
        Cmd::Provider { chain, cmd } => chain::run_provider(&chain, cmd).await?,
        Cmd::Lease { chain, cmd } => chain::run_lease(&chain, cmd).await?,
        Cmd::Faucet {
            chain,
            wallet,
            sol,
            tokens,
        } => chain::run_faucet(&chain, wallet, sol, tokens).await?,
        Cmd::Keeper {
            chain,
            cmd: KeeperCmd::Register { endpoint },
        } => chain::run_keeper(&chain, chain::KeeperChainCmd::Register { endpoint }).await?,
        Cmd::Keeper {
            chain,
            cmd: KeeperCmd::Update { endpoint },
        } => chain::run_keeper(&chain, chain::KeeperChainCmd::Update { endpoint }).await?,
        Cmd::Keeper {
            chain,
            cmd: KeeperCmd::Drain,
        } => chain::run_keeper(&chain, chain::KeeperChainCmd::Drain).await?,
        Cmd::Keeper {
            chain,
            cmd: KeeperCmd::Deregister,
        } => chain::run_keeper(&chain, chain::KeeperChainCmd::Deregister).await?,
        Cmd::Keeper {
            chain,
            cmd: KeeperCmd::Show { wallet },
        } => chain::run_keeper(&chain, chain::KeeperChainCmd::Show { wallet }).await?,
        Cmd::Keeper {
            chain,
            cmd: KeeperCmd::List,
        } => chain::run_keeper(&chain, chain::KeeperChainCmd::List).await?,
        Cmd::Keeper {
            cmd: KeeperCmd::Run { config },
            ..
        } => {
            let cfg = gpunet_keeper::KeeperConfig::load(config.as_deref())?;
            let (reg, leases) = cfg.directories()?;
            let cancel = CancellationToken::new();
            let h =
                gpunet_keeper::start(cfg, Arc::new(reg), Arc::new(leases), cancel.clone()).await?;
            eprintln!("keeper {} listening on {}", h.keeper_id, h.addr);
            tokio::spawn(shutdown_signal(cancel));
            h.wait().await?;
        }
        Cmd::Worker {
            cmd: WorkerCmd::Run(a),
        } => {
            let key = read_key(&a.key_file)?;
            let mut c = gpunet_worker::WorkerConfig::new(&a.keeper, &a.provider, key);
            c.declared_gpus = a.gpus.map(|n| gpunet_worker::DeclaredGpus {
                count: n,
                model: a.gpu_model.clone(),
                memory_bytes: 80 << 30,
            });
            c.milli_cpus = (a.cpus * 1000.0) as u32;
            c.memory_bytes = a.memory_gib << 30;
            c.zone = a.zone;
            if let Some(d) = a.work_dir {
                c.work_dir = d;
            }
            c.lanes = !a.no_lanes;
            let h = gpunet_worker::spawn(c);
            eprintln!("worker {}", h.id());
            tokio::spawn(shutdown_signal(h.cancel.clone()));
            h.join().await?;
        }
        Cmd::Key { cmd } => match cmd {
            KeyCmd::Generate { out } => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
                let k = SigningKey::from_bytes(&seed);
                std::fs::write(&out, bs58::encode(seed).into_string())?;
                println!(
                    "{}",
                    bs58::encode(k.verifying_key().as_bytes()).into_string()
                );
            }
            KeyCmd::Pubkey { key_file } => {
                println!(
                    "{}",
                    bs58::encode(read_key(&key_file)?.verifying_key().as_bytes()).into_string()
                );
            }
        },
        Cmd::Task { conn, cmd } => task_cmd(conn, cmd).await?,
        Cmd::Bench {
            conn,
            scale,
            clients,
        } => {
            let key = read_key(conn.key_file.as_ref().context("--key-file is required")?)?;
            bench::run(&conn.keeper, &conn.lease, &key, scale, clients).await?;
        }
    }
    Ok(())
}

async fn task_cmd(conn: Conn, cmd: TaskCmd) -> Result<()> {
    let key_file = conn
        .key_file
        .as_ref()
        .context("--key-file (or GPUNET_KEY_FILE) is required")?;
    if conn.lease.is_empty() {
        bail!("--lease (or GPUNET_LEASE) is required");
    }
    let key = read_key(key_file)?;
    let c = Client::connect(&conn.keeper, &conn.lease, &key).await?;
    let out = conn.output;
    match cmd {
        TaskCmd::Submit {
            builtin,
            payload,
            gpus,
            cpus,
            env,
            time_limit,
            memory_limit_mib,
            max_retries,
            count,
            wait,
            timeout,
            argv,
        } => {
            let mut spec = match builtin {
                Some(name) => task::builtin(&name, payload.into_bytes()),
                None => {
                    if argv.is_empty() {
                        bail!("give a program after `--`, or --builtin NAME");
                    }
                    let refs: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
                    let mut s = task::process(&refs);
                    if let Some(pb::task_spec::Executor::Process(p)) = s.executor.as_mut() {
                        for e in &env {
                            let (k, v) = e.split_once('=').context("--env takes KEY=VALUE")?;
                            p.env.insert(k.to_string(), v.to_string());
                        }
                        p.time_limit_ms = time_limit.map(|t| (t * 1000.0) as u64).unwrap_or(0);
                        p.memory_limit_bytes = memory_limit_mib.unwrap_or(0) << 20;
                    }
                    s
                }
            };
            spec.resources = Some(task::resources((cpus * 1000.0) as u32, gpus));
            spec.max_retries = max_retries;
            let ids = c.submit(vec![spec; count.max(1) as usize]).await?;
            if !wait {
                match out {
                    Output::Json => println!("{}", json!({ "task_ids": ids })),
                    Output::Text => ids.iter().for_each(|id| println!("{id}")),
                }
                return Ok(());
            }
            let bar = indicatif::ProgressBar::new(ids.len() as u64);
            bar.set_message("running");
            let mut failed = false;
            for id in &ids {
                let r = c.get(*id, 0, Duration::from_secs_f64(timeout)).await?;
                bar.inc(1);
                let st = r.status.unwrap_or_default();
                failed |= st.state != pb::TaskState::Finished as i32;
                bar.suspend(|| match out {
                    Output::Json => {
                        let mut v = status_json(&st);
                        v["output"] = json!(String::from_utf8_lossy(&r.data));
                        println!("{v}");
                    }
                    Output::Text => {
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
        }
        TaskCmd::Status { ids } => {
            for s in c.status(&ids).await? {
                print_status(out, &s);
            }
        }
        TaskCmd::Cancel { ids } => {
            let r = c.cancel(&ids).await?;
            for (id, ok) in ids.iter().zip(r) {
                match out {
                    Output::Json => println!("{}", json!({ "task_id": id, "cancelled": ok })),
                    Output::Text => {
                        println!("{id}: {}", if ok { "cancelled" } else { "already done" })
                    }
                }
            }
        }
        TaskCmd::Get { id, index, timeout } => {
            let sp = spinner(format!("waiting for task {id}"));
            let r = c.get(id, index, Duration::from_secs_f64(timeout)).await;
            sp.finish_and_clear();
            let r = r?;
            let st = r.status.unwrap_or_default();
            match out {
                Output::Json => {
                    let mut v = status_json(&st);
                    v["ready"] = json!(r.ready);
                    v["output"] = json!(String::from_utf8_lossy(&r.data));
                    println!("{v}");
                }
                Output::Text => {
                    if !r.ready || st.state != pb::TaskState::Finished as i32 {
                        print_status(out, &st);
                        std::process::exit(1);
                    }
                    use std::io::Write;
                    std::io::stdout().write_all(&r.data)?;
                }
            }
        }
        TaskCmd::List {
            state,
            after,
            limit,
        } => {
            let st = match state.as_deref() {
                None => pb::TaskState::Unspecified,
                Some("waiting") => pb::TaskState::WaitingForDeps,
                Some("queued") => pb::TaskState::Queued,
                Some("running") => pb::TaskState::Running,
                Some("finished") => pb::TaskState::Finished,
                Some("failed") => pb::TaskState::Failed,
                Some("cancelled") => pb::TaskState::Cancelled,
                Some(o) => bail!("unknown state {o}"),
            };
            for s in c.list(st, after, limit).await? {
                print_status(out, &s);
            }
        }
        TaskCmd::Watch { ids } => {
            let mut w = c.watch(&ids).await?;
            while let Some(ev) = w.message().await? {
                if let Some(s) = ev.status {
                    print_status(out, &s);
                }
            }
        }
        TaskCmd::Prove { worker, n, rounds } => {
            let sp = spinner(format!("proving worker {worker}"));
            let v = c.prove(&worker, n, rounds).await;
            sp.finish_and_clear();
            let v = v?;
            match out {
                Output::Json => println!("{}", verdict_json(&v)),
                Output::Text => {
                    let digest: String = v.digest.iter().map(|b| format!("{b:02x}")).collect();
                    if v.ok {
                        println!(
                            "verified: {:.3} TOP/s (class {} needs {:.1}), n={} K={}, {} tiles checked",
                            v.measured_tops,
                            v.gpu_class,
                            v.required_tops,
                            v.n,
                            v.rounds,
                            v.tiles_checked
                        );
                    } else {
                        println!(
                            "{} ({}): {}",
                            v.verdict().label(),
                            if v.rejection.is_empty() {
                                v.stage().label()
                            } else {
                                v.rejection.as_str()
                            },
                            v.reason
                        );
                    }
                    if !digest.is_empty() {
                        println!("transcript digest {digest}");
                    }
                    println!("proof task {} on worker {}", v.task_id, v.worker_id);
                }
            }
            if !v.ok {
                std::process::exit(1);
            }
        }
        TaskCmd::Cluster => {
            let cl = c.cluster().await?;
            match out {
                Output::Json => println!(
                    "{}",
                    json!({
                        "lease": cl.lease_id, "provider": cl.provider, "state": cl.state().label(),
                        "gpus_requested": cl.gpus_requested, "gpus_ready": cl.gpus_ready,
                        "workers": cl.workers.iter().map(|w| json!({
                            "id": w.worker_id, "zone": w.zone, "gpus": w.gpus.len(), "cpu_only": w.cpu_only,
                            "running": w.running_tasks, "draining": w.draining,
                        })).collect::<Vec<_>>(),
                    })
                ),
                Output::Text => {
                    println!(
                        "lease {} ({}): {} — {}/{} GPUs",
                        cl.lease_id,
                        cl.provider,
                        cl.state().label(),
                        cl.gpus_ready,
                        cl.gpus_requested
                    );
                    for w in cl.workers {
                        println!(
                            "  {}  gpus={}{}  running={}",
                            w.worker_id,
                            w.gpus.len(),
                            if w.cpu_only {
                                " (declared, CPU-only mode)"
                            } else {
                                ""
                            },
                            w.running_tasks
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
