//! The daemons: `gpunet keeper run` and `gpunet worker run`. Both sign with a Solana JSON
//! keypair file (`--keypair`, default `~/.config/solana/id.json`): the keeper with its on-chain
//! keeper wallet, the worker with a key its provider's account lists. Both run until SIGINT or
//! SIGTERM, then shut down gracefully (a worker drains first).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use gpunet_keeper::chain::{
    Auditor, ChainDirectory, Checkpointer, Committee, PeerSvc, Reassigner, WatchConfig, Watcher,
};
use gpunet_keeper::explorer::{Explorer, Scope};
use gpunet_sdk::{ProviderFilter, SdkError, pda};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use solana_sdk::signer::Signer;
use tokio_util::sync::CancellationToken;

use crate::{Global, chain, key};

/// `gpunet keeper run`
#[derive(Args, Debug)]
pub struct KeeperRunArgs {
    /// TOML config (defaults apply without one; see `gpunet_keeper::config`).
    #[arg(long, env = "GPUNET_KEEPER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve the providers and leases of the config file instead of the chain's (tests and
    /// benchmarks without a chain). Without it the keeper serves the leases whose account
    /// names its keeper account, on the cluster at `--url`.
    #[arg(long)]
    pub offline: bool,
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
    /// Keeper URL; default: the endpoint published by the keeper of an active lease on this
    /// worker's provider (found on the cluster at `--url`; the worker waits for one, and
    /// follows the lease to its new keeper if it is reassigned).
    #[arg(long, env = "GPUNET_KEEPER_URL")]
    keeper: Option<String>,
    /// Provider account this worker serves; default: the one provider account on the cluster
    /// at `--url` that lists this worker's key.
    #[arg(long, env = "GPUNET_PROVIDER")]
    provider: Option<String>,
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
    /// Zone label (tasks select it as `zone`; SPREAD spreads over zones first).
    #[arg(long, default_value = "")]
    zone: String,
    /// Another label tasks can select, LABEL=VALUE (`region=eu-west`, `rack=r7`); repeatable.
    #[arg(long = "label", value_name = "LABEL=VALUE")]
    labels: Vec<String>,
    /// Working directory root for process tasks.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Do not offer lanes: the keeper then sends one task per free slot instead of queueing
    /// short tasks on this worker ahead of time (pipelining).
    #[arg(long)]
    no_lanes: bool,
    /// Process tasks run in a bubblewrap sandbox (own namespaces, only their directory
    /// writable, no network unless asked, an unprivileged user): `on` refuses to start without
    /// one, `auto` falls back to unsandboxed with a warning, `off` never sandboxes.
    #[arg(long, default_value = "on", value_parser = parse_sandbox)]
    sandbox: gpunet_worker::SandboxMode,
    /// Refuse tasks that ask for the network (`task submit --network`).
    #[arg(long)]
    no_network: bool,
    /// A cgroup per process task: memory capped by the kernel (its memory limit, else what it
    /// reserved) and CPU held to what it reserved. Needs root or a delegated cgroup v2
    /// subtree: `on` refuses to start without, `auto` runs without them with a warning
    /// (memory limits are then RLIMIT_AS), `off` never.
    #[arg(long, default_value = "auto", value_parser = parse_cgroups)]
    cgroups: gpunet_worker::CgroupMode,
}

fn parse_cgroups(s: &str) -> Result<gpunet_worker::CgroupMode, String> {
    s.parse()
}

fn parse_sandbox(s: &str) -> Result<gpunet_worker::SandboxMode, String> {
    s.parse()
}

/// `gpunet keeper run`: the keeper signs with `--keypair` if given, else with the config's
/// `keeper_key`, else with `~/.config/solana/id.json` — its on-chain keeper wallet. In chain
/// mode (the default) it serves the leases whose account names its keeper account.
pub async fn run_keeper(g: &Global, args: KeeperRunArgs) -> Result<()> {
    let mut cfg = gpunet_keeper::KeeperConfig::load(args.config.as_deref())?;
    if g.keypair.is_some() || cfg.keeper_key.is_none() {
        cfg.keeper_key = Some(g.keypair_path().display().to_string());
    }
    // `key::load` says what is wrong with a missing or old-format file.
    let wallet = match &cfg.keeper_key {
        Some(path) => key::to_solana(&key::load(path.as_ref())?),
        None => bail!("the keeper needs a wallet (--keypair)"),
    };
    let cancel = CancellationToken::new();
    let h = if args.offline {
        let (reg, leases) = cfg.directories()?;
        let h = gpunet_keeper::start(cfg, Arc::new(reg), Arc::new(leases), cancel.clone()).await?;
        eprintln!("keeper {} listening on {} (offline)", h.keeper_id, h.addr);
        h
    } else {
        start_on_chain(g, cfg, wallet, &cancel).await?
    };
    tokio::spawn(shutdown_signal(cancel));
    h.wait().await?;
    Ok(())
}

/// A keeper serving the leases whose account names its keeper account: the chain read once
/// before serving, then the watcher, the checkpointer (slashing providers whose workers fail
/// by their own doing), the auditor of other members' checkpoints and the reassigner running
/// beside it; other members reach its co-signing service on the same address.
pub async fn start_on_chain(
    g: &Global,
    cfg: gpunet_keeper::KeeperConfig,
    wallet: Keypair,
    cancel: &CancellationToken,
) -> Result<gpunet_keeper::KeeperHandle> {
    if !cfg.providers.is_empty() || !cfg.leases.is_empty() {
        bail!(
            "the config lists [[providers]] or [[leases]]: those are for --offline; in chain mode \
             they come from the chain"
        );
    }
    let account = pda::keeper(&wallet.pubkey());
    let keeper = g
        .client()
        .fetch::<gpunet_sdk::Keeper>("keeper", &account)
        .await
        .map_err(|e| match e {
            SdkError::NotFound { .. } => anyhow!(
                "no keeper account for wallet {}: run `gpunet keeper register` first",
                wallet.pubkey()
            ),
            e => chain::explain(e, "keeper run"),
        })?;
    if keeper.status != gpunet_sdk::KeeperStatus::Active {
        eprintln!(
            "warning: keeper account {account} is {:?}: it is drawn into no new committee",
            keeper.status
        );
    }
    let dir = Arc::new(ChainDirectory::new(account));
    let watch = WatchConfig {
        rpc_url: chain::resolve_url(&g.url),
        ws_url: (!cfg.ws_url.is_empty()).then(|| cfg.ws_url.clone()),
        reconcile_every: cfg.reconcile_every,
    };
    let watcher = Watcher::new(&watch, dir.clone());
    // One full read before serving, so workers and users are admitted from the start.
    watcher
        .reconcile()
        .await
        .map_err(|e| chain::explain(e, "keeper run: reading the chain"))?;
    let every = cfg
        .reconcile_every
        .max(std::time::Duration::from_millis(100));
    let (audit_every, audit_sample, window) =
        (cfg.audit_every, cfg.audit_sample, cfg.transcript_window);
    // Other committee members ask this keeper to co-sign slashes on the same address.
    let (peer, slot) = PeerSvc::new();
    let explorer_listen = cfg.explorer_listen.clone();
    let h = gpunet_keeper::start_with(cfg, dir.clone(), dir.clone(), peer.routes(), cancel.clone())
        .await?;
    eprintln!(
        "keeper {account} listening on {} (chain {}, endpoint on chain {}, {} lease(s))",
        h.addr,
        watch.rpc_url,
        keeper.endpoint,
        dir.served_leases().len()
    );
    // Challenges bound to a recent slot, its hash and the epoch, as the watcher last read them.
    h.prover().set_anchor(dir.clone());
    watcher.spawn(h.core().clone(), cancel.clone());
    // Checkpoints: every due lease proved and posted (the chain's periods, not a local timer).
    let rpc = &watch.rpc_url;
    let (core, prover) = (h.core().clone(), h.prover().clone());
    let metrics = core.metrics.clone();
    // Workers heard from are stamped with the chain's time (a slash for silence rests on it).
    core.liveness.set_clock(dir.clone());
    let committee = Arc::new(Committee::new(
        rpc,
        wallet.insecure_clone(),
        window,
        metrics.clone(),
        core.liveness.clone(),
    ));
    let _ = slot.set(committee.clone());
    let checkpointer = Checkpointer::new(rpc, wallet.insecure_clone(), dir, prover, core.clone())
        .with_committee(committee.clone());
    // Due leases are found on the watcher's copies (one clock read a tick), so the tick is
    // short: it bounds the checkpoint lag.
    let tick = every.min(std::time::Duration::from_secs(1));
    tokio::spawn(Arc::new(checkpointer).run(tick, cancel.clone()));
    // Other members' checkpoints re-verified; a false one slashed with the committee.
    let auditor = Auditor::new(rpc, committee, audit_sample, metrics);
    tokio::spawn(Arc::new(auditor).run(audit_every, cancel.clone()));
    // Leases of a silent keeper this one is the successor of.
    let reassigner = Reassigner::new(rpc, wallet, core.clone());
    tokio::spawn(Arc::new(reassigner).run(every, cancel.clone()));
    // The explorer page of this keeper's leases, when asked for.
    if !explorer_listen.is_empty() {
        let explorer = Arc::new(Explorer::new(rpc, Scope::Keeper(account), vec![core]));
        explorer.spawn(std::time::Duration::from_secs(1), cancel.clone());
        let addr = explorer
            .serve(&explorer_listen, cancel.clone())
            .await
            .with_context(|| format!("explorer_listen {explorer_listen}"))?;
        eprintln!("explorer of this keeper's leases: http://{addr}/");
    }
    Ok(h)
}

/// The provider account a worker key serves: the one whose `workers` lists it.
async fn provider_of(g: &Global, worker: &Pubkey) -> Result<String> {
    let providers = g
        .client()
        .providers(&ProviderFilter::default())
        .await
        .map_err(|e| chain::explain(e, "worker run: finding its provider"))?;
    let mine: Vec<Pubkey> = providers
        .iter()
        .filter(|(_, p)| p.workers.contains(worker))
        .map(|(k, _)| *k)
        .collect();
    match mine.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "no provider account lists worker key {worker}: add it with `gpunet provider update \
             --worker {worker}` (or pass --provider)"
        ),
        many => bail!(
            "{} provider accounts list worker key {worker}; pick one with --provider",
            many.len()
        ),
    }
}

/// `gpunet worker run`
pub async fn run_worker(g: &Global, cmd: WorkerCmd) -> Result<()> {
    let WorkerCmd::Run(a) = cmd;
    let key = g.signing_key()?;
    let provider = match a.provider.clone() {
        Some(p) => p,
        None => provider_of(g, &key::to_solana(&key).pubkey()).await?,
    };
    // A sandbox that cannot be built stops the worker here, before it joins anyone.
    if let Err(why) = a.sandbox.resolve() {
        bail!("worker run: {why}");
    }
    if a.cgroups == gpunet_worker::CgroupMode::Required
        && let Err(why) = a.cgroups.resolve()
    {
        bail!("worker run: {why}");
    }
    let mut labels = std::collections::HashMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').context("--label takes LABEL=VALUE")?;
        if k.is_empty() || v.is_empty() || k == "zone" {
            bail!("--label {l:?}: a non-empty LABEL=VALUE (the zone comes from --zone)");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let config = |keeper: &str| {
        let mut c = gpunet_worker::WorkerConfig::new(keeper, &provider, key.clone());
        c.declared_gpus = a.gpus.map(|n| gpunet_worker::DeclaredGpus {
            count: n,
            model: a.gpu_model.clone(),
            memory_bytes: 80 << 30,
        });
        c.milli_cpus = (a.cpus * 1000.0) as u32;
        c.memory_bytes = a.memory_gib << 30;
        c.zone = a.zone.clone();
        c.labels = labels.clone();
        if let Some(d) = &a.work_dir {
            c.work_dir = d.clone();
        }
        c.lanes = !a.no_lanes;
        c.sandbox = a.sandbox;
        c.cgroups = a.cgroups;
        c.allow_network = !a.no_network;
        c
    };
    // With --keeper: that keeper, for good.
    if let Some(k) = &a.keeper {
        let h = gpunet_worker::spawn(config(k));
        eprintln!("worker {} of provider {provider}", h.id());
        tokio::spawn(shutdown_signal(h.cancel.clone()));
        h.join().await?;
        return Ok(());
    }
    // Without: every keeper serving a lease of its provider, each offered its share of the
    // GPUs, followed as leases open, end and move (`worker_follow`).
    let address = provider.parse::<Pubkey>().map_err(|_| {
        anyhow!("--keeper is required: provider {provider:?} is not an account address")
    })?;
    let stop = CancellationToken::new();
    tokio::spawn(shutdown_signal(stop.clone()));
    let proof = Arc::new(gpunet_worker::GpunetProof);
    crate::worker_follow::follow_leases(g, &address, config, proof, stop).await
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
