//! `gpunet localnet`: the whole chain on this machine — embedded surfpool with gpunet loaded —
//! serving standard Solana JSON-RPC (8899) and pubsub (8900). On first start it initialises
//! gpunet: the signer's keypair (created if missing) becomes admin and mint authority of a new
//! stake/payment mint, and gets SOL and tokens to start with.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use gpunet_localnet::{Localnet, LocalnetConfig};
use gpunet_sdk::{GpunetClient, SdkError, setup};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use solana_sdk::signature::{Keypair, Signer, read_keypair_file, write_keypair_file};

use crate::chain::{ChainOpts, Output, default_keypair_path};

/// `gpunet localnet` options.
#[derive(Args, Debug)]
pub struct LocalnetArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// JSON-RPC port.
    #[arg(long, default_value_t = gpunet_localnet::DEFAULT_RPC_PORT)]
    pub rpc_port: u16,
    /// Websocket (pubsub) port.
    #[arg(long, default_value_t = gpunet_localnet::DEFAULT_WS_PORT)]
    pub ws_port: u16,
    /// Keep the chain in DIR across restarts (default: in memory).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Do not initialise gpunet (config, mint) on a fresh chain.
    #[arg(long)]
    pub no_init: bool,
}

/// Decimals of the localnet's mint.
const DECIMALS: u8 = 6;
/// Tokens the admin gets on a fresh localnet (whole tokens).
const ADMIN_TOKENS: u64 = 1_000_000;

fn spinner(output: Output, msg: &str) -> Option<ProgressBar> {
    (output == Output::Table).then(|| {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    })
}

fn admin_keypair(opts: &ChainOpts) -> Result<(Keypair, bool)> {
    let path = opts.keypair.clone().unwrap_or_else(default_keypair_path);
    if path.exists() {
        let kp = read_keypair_file(&path)
            .map_err(|e| anyhow!("cannot read keypair {}: {e}", path.display()))?;
        return Ok((kp, false));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let kp = Keypair::new();
    write_keypair_file(&kp, &path)
        .map_err(|e| anyhow!("cannot write keypair {}: {e}", path.display()))?;
    Ok((kp, true))
}

async fn initialise(client: &GpunetClient, admin: &Keypair) -> Result<serde_json::Value> {
    match client.config().await {
        Ok(c) => {
            return Ok(
                json!({"initialised": "already", "admin": c.admin.to_string(), "mint": c.mint.to_string()}),
            );
        }
        Err(SdkError::NotFound { .. }) => {}
        Err(e) => return Err(anyhow!("reading the config: {e}")),
    }
    let sig = client
        .rpc()
        .request_airdrop(&admin.pubkey(), 1_000 * 1_000_000_000)
        .await
        .context("airdrop to the admin")?;
    for _ in 0..100 {
        if client
            .rpc()
            .confirm_transaction(&sig)
            .await
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
/// printed to stdout. They go to stderr instead (where a validator's logs would go), so that
/// stdout carries only this command's own output — one JSON document with `--output json`.
/// Returns a handle on the real stdout.
#[cfg(unix)]
fn program_logs_to_stderr() -> Result<Box<dyn std::io::Write + Send>> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    std::io::stdout().flush()?;
    // SAFETY: plain descriptor calls on the process's own stdout/stderr; the duplicated
    // descriptor is owned by the returned File from here on.
    let saved = unsafe { libc::dup(1) };
    if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error()).context("redirecting program logs to stderr");
    }
    Ok(Box::new(unsafe { std::fs::File::from_raw_fd(saved) }))
}

#[cfg(not(unix))]
fn program_logs_to_stderr() -> Result<Box<dyn std::io::Write + Send>> {
    Ok(Box::new(std::io::stdout()))
}

/// Runs the localnet until Ctrl-C or SIGTERM.
pub async fn run(opts: &ChainOpts, args: LocalnetArgs) -> Result<()> {
    use std::io::Write;
    let mut out = program_logs_to_stderr()?;
    let config = LocalnetConfig {
        bind_host: args.bind.clone(),
        rpc_port: args.rpc_port,
        ws_port: args.ws_port,
        ledger: args.ledger.clone(),
        ..LocalnetConfig::default()
    };
    let pb = spinner(
        opts.output,
        "starting the localnet (surfpool, offline, gpunet loaded natively)",
    );
    let net = tokio::task::spawn_blocking(move || Localnet::start(config))
        .await
        .context("localnet start task")??;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let client = GpunetClient::new(net.rpc_url());

    let mut summary = json!({
        "rpc_url": net.rpc_url(),
        "websocket_url": net.ws_url(),
        "program_id": gpunet_sdk::gpunet::ID.to_string(),
        "ledger": args.ledger.as_ref().map(|p| p.display().to_string()),
    });
    if !args.no_init {
        let (admin, created) = admin_keypair(opts)?;
        let pb = spinner(opts.output, "initialising gpunet (mint, config)");
        let init = initialise(&client, &admin).await;
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        let init = match init {
            Ok(v) => v,
            Err(e) => {
                let _ = tokio::task::spawn_blocking(move || net.stop()).await;
                return Err(e);
            }
        };
        if let (Some(s), Some(i)) = (summary.as_object_mut(), init.as_object()) {
            s.extend(i.clone());
            if created {
                s.insert(
                    "keypair_created".into(),
                    json!(
                        opts.keypair
                            .clone()
                            .unwrap_or_else(default_keypair_path)
                            .display()
                            .to_string()
                    ),
                );
            }
        }
    }
    match opts.output {
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::to_string(&summary).unwrap_or_default()
        )?,
        Output::Table => {
            writeln!(out, "gpunet localnet is running — Ctrl-C stops it")?;
            if let Some(map) = summary.as_object() {
                for (k, v) in map {
                    if !v.is_null() {
                        writeln!(
                            out,
                            "  {k:<16} {}",
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        )?;
                    }
                }
            }
        }
    }
    out.flush()?;

    wait_for_shutdown().await;
    let pb = spinner(opts.output, "stopping (saving the ledger)");
    tokio::task::spawn_blocking(move || net.stop())
        .await
        .context("localnet stop task")??;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if opts.output == Output::Table {
        writeln!(out, "localnet stopped")?;
    }
    Ok(())
}

async fn wait_for_shutdown() {
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
