//! `gpunet localnet`: the whole chain on this machine — embedded surfpool with gpunet loaded —
//! serving standard Solana JSON-RPC (8899) and pubsub (8900). On first start it initialises
//! gpunet: the signer's keypair (created if missing) becomes admin and mint authority of a new
//! stake/payment mint, and gets SOL and tokens to start with.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Args;
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
    /// Do not initialise gpunet (config, mint) on a fresh chain.
    #[arg(long)]
    pub no_init: bool,
}

/// Decimals of the localnet's mint.
const DECIMALS: u8 = 6;
/// Tokens the admin gets on a fresh localnet (whole tokens).
const ADMIN_TOKENS: u64 = 1_000_000;

/// The signer's keypair; created (Solana JSON) if missing. Returns whether it was created.
fn admin_keypair(g: &Global) -> Result<(Keypair, bool)> {
    let path = g.keypair_path();
    if path.exists() {
        return Ok((crate::key::to_solana(&crate::key::load(&path)?), false));
    }
    let key = keys::generate().map_err(|e| anyhow!("randomness: {e}"))?;
    keys::write_keypair_file(&path, &key, false)?;
    Ok((crate::key::to_solana(&key), true))
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
/// printed to stdout. They go to stderr instead (where a validator's logs would go), so that
/// stdout carries only this command's own output — one JSON document with `--output json`.
/// Returns a handle on the real stdout.
#[cfg(unix)]
fn program_logs_to_stderr() -> Result<Box<dyn std::io::Write + Send>> {
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
    let mut out = program_logs_to_stderr()?;
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
    if !args.no_init
        && let Err(e) = initialise_into(g, &client, &mut summary).await
    {
        let _ = tokio::task::spawn_blocking(move || net.stop()).await;
        return Err(e);
    }
    print_summary(&mut out, g.output, &summary)?;

    crate::daemon::wait_for_signal().await;
    let sp = Spinner::start(g.output, "stopping (saving the ledger)");
    tokio::task::spawn_blocking(move || net.stop())
        .await
        .context("localnet stop task")??;
    sp.stop();
    if g.output == Output::Table {
        writeln!(out, "localnet stopped")?;
    }
    Ok(())
}
