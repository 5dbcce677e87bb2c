//! The daemons: `gpunet keeper run` and `gpunet worker run`. Both sign with a Solana JSON
//! keypair file (`--keypair`, default `~/.config/solana/id.json`): the keeper with its on-chain
//! keeper wallet, the worker with a key its provider's account lists. Both run until SIGINT or
//! SIGTERM, then shut down gracefully (a worker drains first).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{Global, key};

/// `gpunet keeper run`
#[derive(Args, Debug)]
pub struct KeeperRunArgs {
    /// TOML config (defaults apply without one; see `gpunet_keeper::config`).
    #[arg(long, env = "GPUNET_KEEPER_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `gpunet worker …`
#[derive(Subcommand)]
pub enum WorkerCmd {
    /// Run a worker until SIGINT/SIGTERM (then it drains).
    Run(WorkerArgs),
}

/// `gpunet worker run`
#[derive(Args)]
pub struct WorkerArgs {
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

/// `gpunet keeper run`: the keeper signs with `--keypair` if given, else with the config's
/// `keeper_key`, else with `~/.config/solana/id.json` — its on-chain keeper wallet.
pub async fn run_keeper(g: &Global, args: KeeperRunArgs) -> Result<()> {
    let mut cfg = gpunet_keeper::KeeperConfig::load(args.config.as_deref())?;
    if g.keypair.is_some() || cfg.keeper_key.is_none() {
        cfg.keeper_key = Some(g.keypair_path().display().to_string());
    }
    if let Some(path) = &cfg.keeper_key {
        key::load(path.as_ref())?; // the CLI's sentences for a missing or old-format file
    }
    let (reg, leases) = cfg.directories()?;
    let cancel = CancellationToken::new();
    let h = gpunet_keeper::start(cfg, Arc::new(reg), Arc::new(leases), cancel.clone()).await?;
    eprintln!("keeper {} listening on {}", h.keeper_id, h.addr);
    tokio::spawn(shutdown_signal(cancel));
    h.wait().await?;
    Ok(())
}

/// `gpunet worker run`
pub async fn run_worker(g: &Global, cmd: WorkerCmd) -> Result<()> {
    let WorkerCmd::Run(a) = cmd;
    let mut c = gpunet_worker::WorkerConfig::new(&a.keeper, &a.provider, g.signing_key()?);
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
    Ok(())
}

/// Cancels `cancel` on SIGINT or SIGTERM.
async fn shutdown_signal(cancel: CancellationToken) {
    wait_for_signal().await;
    cancel.cancel();
}

/// Returns on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
