//! The rest of gpunet on the localnet, in the same process: three keepers (chain mode, each on
//! its own loopback port, published on chain) and a demo provider whose workers run on this
//! machine — with funded Solana keypair files for every party in one directory.
//!
//! Every party is set up through the same instructions any other cluster would see (the
//! SDK's builders, JSON-RPC); on a localnet kept with `--ledger` the accounts already exist
//! and only what changed (the keepers' ports) is updated.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow};
use gpunet_sdk::gpunet::instructions::ProviderRegisterArgs;
use gpunet_sdk::gpunet::state::{GpuClass, GpuOffer};
use gpunet_sdk::task::{SigningKey, keys};
use gpunet_sdk::{GpunetClient, SdkError, ix, pda, setup, token};
use serde_json::{Value, json};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use tokio_util::sync::CancellationToken;

use crate::Global;

/// Keepers the localnet runs (the default committee is 3, quorum 2).
pub const KEEPERS: usize = 3;
/// Demo workers, and GPUs each declares on a machine without GPUs.
const WORKERS: usize = 2;
const GPUS_PER_WORKER: u32 = 2;
/// Whole tokens each party starts with.
const PARTY_TOKENS: u64 = 100_000;

/// Where the parties' keypair files go, and the ports the keepers listen on.
pub struct SystemArgs {
    pub dir: PathBuf,
    /// Keep the keepers' stores (beside a kept ledger); otherwise they live in memory, as the
    /// chain does.
    pub persist: bool,
    /// First keeper port (the others follow); 0: free ports.
    pub keeper_port: u16,
    /// The localnet's pubsub URL (the keepers' watchers follow the program there).
    pub ws_url: String,
    /// The decimals of the localnet's mint (parties are funded in whole tokens).
    pub decimals: u8,
}

/// What runs: the summary, the handles, and what the demo drives.
pub struct System {
    pub summary: Value,
    pub keepers: Vec<gpunet_keeper::KeeperHandle>,
    pub workers: Vec<tokio::task::JoinHandle<Result<()>>>,
    /// Per demo worker: the switch that makes it skip its proof work (`--demo`).
    pub shirk: Vec<Arc<AtomicBool>>,
    /// The demo user's wallet.
    pub user: Keypair,
    /// The demo provider's wallet, and the keepers' wallets.
    pub provider_wallet: Pubkey,
    pub keeper_wallets: Vec<Pubkey>,
}

/// Loads `dir/NAME.json`, or creates it.
fn party(dir: &Path, name: &str) -> Result<(Keypair, PathBuf)> {
    let path = dir.join(format!("{name}.json"));
    let key = if path.exists() {
        keys::read_keypair_file(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?
    } else {
        let k = keys::generate().map_err(|e| anyhow!("randomness: {e}"))?;
        keys::write_keypair_file(&path, &k, false)?;
        k
    };
    Ok((crate::key::to_solana(&key), path))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn exists(client: &GpunetClient, address: &Pubkey) -> Result<bool> {
    let found = client
        .rpc()
        .get_account_with_commitment(address, client.rpc().commitment())
        .await
        .map_err(SdkError::from)
        .context("reading an account")?;
    Ok(found.value.is_some())
}

/// SOL and tokens for a new party (from the admin, the mint authority).
async fn fund(
    client: &GpunetClient,
    admin: &Keypair,
    (mint, decimals): (&Pubkey, u8),
    who: &Pubkey,
) -> Result<()> {
    client.airdrop(who, 10 * 1_000_000_000).await?;
    let amount = PARTY_TOKENS * 10u64.pow(u32::from(decimals));
    setup::mint_to_wallet(client, admin, admin, mint, who, amount)
        .await
        .with_context(|| {
            format!(
                "minting tokens for {who}: the signer ({}) must be the mint authority of the \
                 localnet's mint (the keypair that initialised this ledger)",
                admin.pubkey()
            )
        })?;
    Ok(())
}

/// Sets up (or finds) every party on the chain at `g.url` and starts the keepers and workers.
pub async fn start(
    g: &Global,
    admin: &Keypair,
    args: &SystemArgs,
    cancel: &CancellationToken,
) -> Result<System> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let client = g.client();
    let config = client.config().await.context("reading the config")?;
    let mint = config.mint;
    let token = 10u64.pow(u32::from(args.decimals));

    // Keepers: registered once, their endpoint kept current.
    let mut keepers = Vec::new();
    let mut urls = Vec::new();
    for i in 0..KEEPERS {
        let (w, path) = party(&args.dir, &format!("keeper-{}", i + 1))?;
        let port = match args.keeper_port {
            0 => free_port()?,
            p => p + i as u16,
        };
        let url = format!("http://127.0.0.1:{port}");
        let account = pda::keeper(&w.pubkey());
        if !exists(&client, &account).await? {
            fund(&client, admin, (&mint, args.decimals), &w.pubkey()).await?;
            let ata = token::ata(&w.pubkey(), &mint);
            let reg = ix::keeper_register(&w.pubkey(), &ata, &mint, &url);
            client
                .send(&[reg], &w, &[])
                .await
                .context("keeper_register")?;
        } else if client.keeper(&w.pubkey()).await?.endpoint != url {
            let upd = ix::keeper_update(&w.pubkey(), &url);
            client
                .send(&[upd], &w, &[])
                .await
                .context("keeper_update")?;
        }
        keepers.push((w, path, port));
        urls.push(url);
    }

    // The demo provider and its worker keys.
    let (pw, provider_path) = party(&args.dir, "provider")?;
    let mut worker_keys = Vec::new();
    for i in 0..WORKERS {
        worker_keys.push(party(&args.dir, &format!("worker-{}", i + 1))?);
    }
    let provider = pda::provider(&pw.pubkey());
    let gpus = (WORKERS as u32) * GPUS_PER_WORKER;
    if !exists(&client, &provider).await? {
        fund(&client, admin, (&mint, args.decimals), &pw.pubkey()).await?;
        let offer = GpuOffer {
            class: GpuClass::Other,
            count: gpus as u16,
            vram_gib: 1,
            price_per_gpu_second: 10,
        };
        let reg = ix::provider_register(
            &pw.pubkey(),
            &mint,
            ProviderRegisterArgs {
                region: "local".into(),
                zone: "a".into(),
                endpoint: "grpc://127.0.0.1".into(),
                gpu: offer,
                workers: worker_keys.iter().map(|(k, _)| k.pubkey()).collect(),
            },
        );
        let stake = ix::provider_stake(
            &pw.pubkey(),
            &token::ata(&pw.pubkey(), &mint),
            &mint,
            1_000 * token,
        );
        client
            .send(&[reg, stake], &pw, &[])
            .await
            .context("provider_register")?;
    }
    let (user, user_path) = party(&args.dir, "user")?;
    if !exists(&client, &token::ata(&user.pubkey(), &mint)).await? {
        fund(&client, admin, (&mint, args.decimals), &user.pubkey()).await?;
    }

    // Run them.
    let keeper_wallets: Vec<Pubkey> = keepers.iter().map(|(w, _, _)| w.pubkey()).collect();
    let mut handles = Vec::new();
    for (i, (w, path, port)) in keepers.into_iter().enumerate() {
        let cfg = gpunet_keeper::KeeperConfig {
            listen: format!("127.0.0.1:{port}"),
            metrics_listen: String::new(),
            db_path: if args.persist {
                let db = args.dir.join(format!("keeper-{}.redb", i + 1));
                db.display().to_string()
            } else {
                String::new()
            },
            keeper_key: Some(path.display().to_string()),
            ws_url: args.ws_url.clone(),
            ..gpunet_keeper::KeeperConfig::default()
        };
        handles.push(crate::daemon::start_on_chain(g, cfg, w, cancel).await?);
    }
    let real_gpus = gpunet_worker::hw::discover().map_or(0, |g| g.len());
    let mut workers = Vec::new();
    let mut shirk = Vec::new();
    for (i, (k, _)) in worker_keys.iter().enumerate() {
        let proof = Arc::new(gpunet_worker::shirk::ShirkingProof::default());
        shirk.push(proof.shirk.clone());
        let key = SigningKey::from_bytes(k.secret_bytes());
        let (g, stop) = (g.clone(), cancel.clone());
        let work_dir = args.dir.join(format!("worker-{}", i + 1));
        let provider_id = provider.to_string();
        workers.push(tokio::spawn(async move {
            let config = |keeper: &str| {
                let mut c = gpunet_worker::WorkerConfig::new(keeper, &provider_id, key.clone());
                if real_gpus == 0 {
                    c.declared_gpus = Some(gpunet_worker::DeclaredGpus {
                        count: GPUS_PER_WORKER,
                        model: "cpu (declared)".into(),
                        memory_bytes: 1 << 30,
                    });
                }
                c.work_dir = work_dir.clone();
                c
            };
            crate::worker_follow::follow_leases(&g, &provider, config, proof, stop).await
        }));
    }
    let prover = if real_gpus > 0 {
        format!("CUDA ({real_gpus} GPU(s) found)")
    } else {
        format!(
            "CPU reference (no GPU found: each worker declares {GPUS_PER_WORKER} GPUs and proves on the CPU)"
        )
    };
    let summary = json!({
        "keepers": urls,
        "wallets": args.dir.display().to_string(),
        "provider": pw.pubkey().to_string(),
        "provider_account": provider.to_string(),
        "provider_wallet": provider_path.display().to_string(),
        "user_wallet": user_path.display().to_string(),
        "workers": WORKERS,
        "prover": prover,
    });
    Ok(System {
        summary,
        keepers: handles,
        workers,
        shirk,
        user,
        provider_wallet: pw.pubkey(),
        keeper_wallets,
    })
}

/// Stops the keepers and workers (after `cancel` fired).
pub async fn stop(s: System) {
    for w in s.workers {
        let _ = w.await;
    }
    for k in s.keepers {
        let _ = k.wait().await;
    }
}

/// The default directory of the parties' keypair files: beside the ledger when there is one,
/// else `~/.config/gpunet/localnet`.
pub fn default_dir(ledger: Option<&Path>) -> PathBuf {
    match ledger {
        Some(l) => l.join("wallets"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".config/gpunet/localnet"),
    }
}
