//! `gpunet localnet`: the whole chain on this machine — embedded surfpool with gpunet loaded —
//! serving standard Solana JSON-RPC (8899) and pubsub (8900). On first start it initialises
//! gpunet: the signer's keypair (created if missing) becomes admin and mint authority of a new
//! stake/payment mint, and gets SOL and tokens to start with. Unless `--bare`, it then runs the
//! rest of gpunet in the same process (`localnet_system.rs`): three keepers and a demo
//! provider whose workers run here. Log lines go to a log file it names (`-v`: here).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use gpunet_keeper::explorer::{Explorer, Scope};
use gpunet_localnet::{Localnet, LocalnetConfig};
use gpunet_sdk::task::keys;
use gpunet_sdk::{GpunetClient, SdkError, setup};
use serde_json::{Value, json};
use solana_sdk::signature::{Keypair, Signer};

use crate::Global;
use crate::output::{Output, Spinner, plain};

/// `gpunet localnet` options.
#[derive(Args, Debug)]
pub struct LocalnetArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// JSON-RPC port.
    #[arg(long, env = "GPUNET_LOCALNET_RPC_PORT", default_value_t = gpunet_localnet::DEFAULT_RPC_PORT)]
    pub rpc_port: u16,
    /// Websocket (pubsub) port.
    #[arg(long, env = "GPUNET_LOCALNET_WS_PORT", default_value_t = gpunet_localnet::DEFAULT_WS_PORT)]
    pub ws_port: u16,
    /// Keep the chain in DIR across restarts (default: in memory).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Do not initialise gpunet (config, mint) on a fresh chain (implies --bare).
    #[arg(long)]
    pub no_init: bool,
    /// Only the chain and gpunet's initialisation: no keepers, no demo provider.
    #[arg(long)]
    pub bare: bool,
    /// Directory of the parties' keypair files and the log [default: LEDGER/wallets with
    /// --ledger, else ~/.config/gpunet/localnet].
    #[arg(long, env = "GPUNET_LOCALNET_DIR")]
    pub dir: Option<PathBuf>,
    /// First of the keepers' gRPC ports (the others follow); 0 picks free ports.
    #[arg(long, env = "GPUNET_LOCALNET_KEEPER_PORT", default_value_t = 7401)]
    pub keeper_port: u16,
    /// Port of the explorer page (providers, keepers, leases, checkpoints, slashes, live
    /// clusters; on 127.0.0.1); 0 picks a free one.
    #[arg(long, env = "GPUNET_LOCALNET_EXPLORER_PORT", default_value_t = 7400)]
    pub explorer_port: u16,
    /// Show every log line here (the validator's, the keepers', the program's) instead of
    /// writing them to the log file.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Once running, walk one whole lease on the demo provider, narrated: open, cluster, tasks,
    /// a paid checkpoint, a cheating worker slashed, close and refund, and every balance.
    #[arg(long, conflicts_with = "bare")]
    pub demo: bool,
    /// Run the demo and stop (exit status 0 when it completed), for scripts.
    #[arg(long, conflicts_with = "bare")]
    pub exit_after_demo: bool,
}

impl LocalnetArgs {
    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| crate::localnet_system::default_dir(self.ledger.as_deref()))
    }
}

/// Whether the log lines go to the log file rather than the terminal.
pub fn quiet(a: &LocalnetArgs) -> bool {
    !a.verbose && std::env::var_os("GPUNET_LOG").is_none()
}

/// The log file of a quiet localnet.
pub fn log_path(a: &LocalnetArgs) -> PathBuf {
    a.dir().join("localnet.log")
}

/// Opens (truncating) the log file of a quiet localnet.
pub fn open_log(a: &LocalnetArgs) -> Result<std::fs::File> {
    let dir = a.dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = log_path(a);
    std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // Append mode: the program's log lines reach the same file through another handle.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Decimals of the localnet's mint.
pub const DECIMALS: u8 = 6;
/// Tokens the admin gets on a fresh localnet (whole tokens).
const ADMIN_TOKENS: u64 = 1_000_000;

/// The signer's keypair; created (Solana JSON) if missing. Returns whether it was created.
pub(crate) fn admin_keypair(g: &Global) -> Result<(Keypair, bool)> {
    let path = g.keypair_path();
    if path.exists() {
        return Ok((crate::key::to_solana(&crate::key::load(&path)?), false));
    }
    let key = keys::generate().map_err(|e| anyhow!("randomness: {e}"))?;
    keys::write_keypair_file(&path, &key, false)?;
    Ok((crate::key::to_solana(&key), true))
}

pub(crate) async fn initialise(
    client: &GpunetClient,
    admin: &Keypair,
) -> Result<serde_json::Value> {
    match client.config().await {
        Ok(c) => {
            return Ok(
                json!({"initialised": "already", "admin": c.admin.to_string(), "mint": c.mint.to_string()}),
            );
        }
        Err(SdkError::NotFound { .. }) => {}
        Err(e) => return Err(anyhow!("reading the config: {e}")),
    }
    client
        .airdrop(&admin.pubkey(), 1_000 * 1_000_000_000)
        .await
        .context("airdrop to the admin")?;
    let mint = setup::create_mint(client, admin, &admin.pubkey(), DECIMALS).await?;
    let treasury =
        setup::init_config(client, admin, &mint, setup::default_params(DECIMALS), false).await?;
    setup::mint_to_wallet(
        client,
        admin,
        admin,
        &mint,
        &admin.pubkey(),
        ADMIN_TOKENS * 10u64.pow(u32::from(DECIMALS)),
    )
    .await?;
    Ok(json!({
        "initialised": "now",
        "admin": admin.pubkey().to_string(),
        "mint": mint.to_string(),
        "treasury": treasury.to_string(),
        "admin_tokens": ADMIN_TOKENS,
    }))
}

/// The program runs natively in this process, and on a host target its `msg!` log lines are
/// printed to stdout. They go to `log` (a quiet localnet's log file), or else to stderr (where
/// a validator's logs would go), so that stdout carries only this command's own output — one
/// JSON document with `--output json`. Returns a handle on the real stdout.
#[cfg(unix)]
fn program_logs_to(log: Option<&std::path::Path>) -> Result<Box<dyn std::io::Write + Send>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    std::io::stdout().flush()?;
    // SAFETY: plain descriptor calls on the process's own stdout/stderr; the duplicated
    // descriptor is owned by the returned File from here on.
    let saved = unsafe { libc::dup(1) };
    let target = match log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let fd = target.as_ref().map_or(2, |f| f.as_raw_fd());
    if saved < 0 || unsafe { libc::dup2(fd, 1) } < 0 {
        return Err(std::io::Error::last_os_error()).context("redirecting program logs");
    }
    Ok(Box::new(unsafe { std::fs::File::from_raw_fd(saved) }))
}

#[cfg(not(unix))]
fn program_logs_to(_: Option<&std::path::Path>) -> Result<Box<dyn std::io::Write + Send>> {
    Ok(Box::new(std::io::stdout()))
}

/// Initialises gpunet on a fresh chain (unless `--no-init`) and adds what it did to `summary`.
async fn initialise_into(g: &Global, client: &GpunetClient, summary: &mut Value) -> Result<()> {
    let (admin, created) = admin_keypair(g)?;
    let sp = Spinner::start(g.output, "initialising gpunet (mint, config)");
    let init = initialise(client, &admin).await?;
    sp.stop();
    if let (Some(s), Some(i)) = (summary.as_object_mut(), init.as_object()) {
        s.extend(i.clone());
        if created {
            let path = g.keypair_path().display().to_string();
            s.insert("keypair_created".into(), json!(path));
        }
    }
    Ok(())
}

/// Prints the summary: one JSON line, or a list for people.
fn print_summary(out: &mut dyn Write, output: Output, summary: &Value) -> Result<()> {
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string(summary)?)?,
        Output::Table => {
            writeln!(out, "gpunet localnet is running — Ctrl-C stops it")?;
            for (k, v) in summary.as_object().into_iter().flatten() {
                if !v.is_null() {
                    writeln!(out, "  {k:<16} {}", plain(v))?;
                }
            }
        }
    }
    Ok(out.flush()?)
}

/// Runs the localnet until Ctrl-C or SIGTERM.
pub async fn run(g: &Global, args: LocalnetArgs) -> Result<()> {
    let log = quiet(&args).then(|| log_path(&args));
    let mut out = program_logs_to(log.as_deref())?;
    let config = LocalnetConfig {
        bind_host: args.bind.clone(),
        rpc_port: args.rpc_port,
        ws_port: args.ws_port,
        ledger: args.ledger.clone(),
        ..LocalnetConfig::default()
    };
    let sp = Spinner::start(
        g.output,
        "starting the localnet (surfpool, offline, gpunet loaded natively)",
    );
    let net = tokio::task::spawn_blocking(move || Localnet::start(config))
        .await
        .context("localnet start task")??;
    sp.stop();
    let client = GpunetClient::new(net.rpc_url());
    let mut summary = json!({
        "rpc_url": net.rpc_url(),
        "websocket_url": net.ws_url(),
        "program_id": gpunet_sdk::gpunet::ID.to_string(),
        "ledger": args.ledger.as_ref().map(|p| p.display().to_string()),
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut system = None;
    let started = async {
        if args.no_init {
            return Ok(());
        }
        initialise_into(g, &client, &mut summary).await?;
        if args.bare {
            return Ok(());
        }
        let local = Global {
            url: net.rpc_url().to_string(),
            ..g.clone()
        };
        let (admin, _) = admin_keypair(g)?;
        let sp = Spinner::start(
            g.output,
            "starting 3 keepers and a demo provider with its workers",
        );
        let sys_args = crate::localnet_system::SystemArgs {
            dir: args.dir(),
            persist: args.ledger.is_some(),
            keeper_port: args.keeper_port,
            ws_url: net.ws_url().to_string(),
            decimals: DECIMALS,
        };
        let s = crate::localnet_system::start(&local, &admin, &sys_args, &cancel).await;
        sp.stop();
        let s = s.context("starting the keepers and the demo provider")?;
        if let (Some(sum), Some(more)) = (summary.as_object_mut(), s.summary.as_object()) {
            sum.extend(more.clone());
        }
        let cores = s.keepers.iter().map(|k| k.core().clone()).collect();
        system = Some(s);
        let explorer = Arc::new(Explorer::new(net.rpc_url(), Scope::All, cores));
        let _ = explorer.refresh().await;
        explorer.spawn(Duration::from_secs(1), cancel.clone());
        let listen = format!("127.0.0.1:{}", args.explorer_port);
        let addr = explorer
            .serve(&listen, cancel.clone())
            .await
            .with_context(|| {
                format!("explorer on {listen} (--explorer-port 0 picks a free port)")
            })?;
        summary["explorer"] = json!(format!("http://{addr}/"));
        anyhow::Ok(())
    }
    .await;
    if let Some(p) = &log {
        summary["log"] = json!(p.display().to_string());
    }
    if let Err(e) = started {
        cancel.cancel();
        if let Some(s) = system {
            crate::localnet_system::stop(s).await;
        }
        let _ = tokio::task::spawn_blocking(move || net.stop()).await;
        return Err(e);
    }
    print_summary(&mut out, g.output, &summary)?;

    let demo = if args.demo || args.exit_after_demo {
        let (admin, _) = admin_keypair(g)?;
        let sys = system
            .as_ref()
            .context("the demo needs the keepers and the demo provider")?;
        let r = crate::demo::run(&client, &admin.pubkey(), sys, &mut out).await;
        match &r {
            Ok(d) => {
                if let Some(url) = summary["explorer"].as_str() {
                    writeln!(out, "\nthe lease in the explorer: {url}#lease-{}", d.lease)?;
                }
            }
            Err(e) => writeln!(out, "demo failed: {e:#}")?,
        }
        Some(r.map(|_| ()))
    } else {
        None
    };
    if !args.exit_after_demo {
        crate::daemon::wait_for_signal().await;
    }
    let sp = Spinner::start(g.output, "stopping (keepers, workers, then the chain)");
    cancel.cancel();
    if let Some(s) = system {
        crate::localnet_system::stop(s).await;
    }
    tokio::task::spawn_blocking(move || net.stop())
        .await
        .context("localnet stop task")??;
    sp.stop();
    if g.output == Output::Table {
        writeln!(out, "localnet stopped")?;
    }
    demo.unwrap_or(Ok(()))
}
