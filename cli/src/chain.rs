//! The chain commands: `gpunet config|keeper|provider|lease …` and `gpunet faucet`.
//! Keypairs and URLs work as in the Solana CLI (`--keypair`, `--url` with monikers); tables by
//! default, `--output json` for scripts; a spinner while a transaction confirms; errors name
//! the program's error, or say what is missing ("insufficient funds: need X, have Y").

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use gpunet_sdk::gpunet::instructions::{LeaseOpenArgs, ProviderRegisterArgs, ProviderUpdateArgs};
use gpunet_sdk::gpunet::state::{Config, GpuClass, GpuOffer, Keeper, Lease, Provider};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::{GpunetClient, LeaseFilter, ProviderFilter, SdkError, pda, setup, token};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer, read_keypair_file};

/// Where and as whom: the Solana CLI's conventions.
#[derive(Args, Debug, Clone)]
pub struct ChainOpts {
    /// JSON-RPC URL or moniker: localhost, devnet, mainnet-beta, testnet.
    #[arg(
        long,
        short = 'u',
        global = true,
        default_value = "localhost",
        env = "GPUNET_URL"
    )]
    pub url: String,
    /// Keypair file that signs and pays.
    #[arg(long, short = 'k', global = true, env = "GPUNET_KEYPAIR")]
    pub keypair: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How results are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// The default keypair path, as the Solana CLI's.
pub fn default_keypair_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".config").join("solana").join("id.json")
}

/// Resolves a moniker to a URL.
pub fn resolve_url(url: &str) -> String {
    match url {
        "localhost" | "l" | "localnet" => "http://127.0.0.1:8899".into(),
        "devnet" | "d" => "https://api.devnet.solana.com".into(),
        "mainnet-beta" | "m" => "https://api.mainnet-beta.solana.com".into(),
        "testnet" | "t" => "https://api.testnet.solana.com".into(),
        other => other.into(),
    }
}

impl ChainOpts {
    fn client(&self) -> GpunetClient {
        GpunetClient::new(resolve_url(&self.url))
    }

    fn signer(&self) -> Result<Keypair> {
        let path = self.keypair.clone().unwrap_or_else(default_keypair_path);
        read_keypair_file(&path).map_err(|e| {
            anyhow!(
                "cannot read keypair {}: {e} (create one with `solana-keygen new`, or start \
                 `gpunet localnet`, which creates it)",
                path.display()
            )
        })
    }
}

/// GPU classes as typed on the command line.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ClassArg {
    H200,
    H100,
    A100,
    L40s,
    A10,
    Rtx4090,
    Rtx3090,
    Other,
}

impl From<ClassArg> for GpuClass {
    fn from(c: ClassArg) -> Self {
        match c {
            ClassArg::H200 => GpuClass::H200,
            ClassArg::H100 => GpuClass::H100,
            ClassArg::A100 => GpuClass::A100,
            ClassArg::L40s => GpuClass::L40S,
            ClassArg::A10 => GpuClass::A10,
            ClassArg::Rtx4090 => GpuClass::Rtx4090,
            ClassArg::Rtx3090 => GpuClass::Rtx3090,
            ClassArg::Other => GpuClass::Other,
        }
    }
}

/// `gpunet config …`
#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Initialise the protocol config (the signer becomes admin; its token account of the mint
    /// the treasury).
    Init {
        /// Stake and payment mint; omitted, a new mint is created with the signer as authority.
        #[arg(long)]
        mint: Option<Pubkey>,
        /// Decimals of a newly created mint.
        #[arg(long, default_value_t = 6)]
        decimals: u8,
    },
    /// Show the config.
    Show,
}

/// `gpunet keeper register|show|list`
#[derive(Subcommand, Debug)]
pub enum KeeperChainCmd {
    /// Bond the configured amount, publish `endpoint` and join the keeper set.
    Register { endpoint: String },
    /// Publish a new endpoint.
    Update { endpoint: String },
    /// Stop taking new leases.
    Drain,
    /// Leave the keeper set (no lease left).
    Deregister,
    /// Show a keeper (default: the signer's).
    Show {
        /// Keeper wallet.
        wallet: Option<Pubkey>,
    },
    /// List keepers.
    List,
}

/// `gpunet provider …`
#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Register as a GPU provider.
    Register {
        #[arg(long)]
        region: String,
        #[arg(long)]
        zone: String,
        /// gRPC endpoint of the worker gateway.
        #[arg(long)]
        endpoint: String,
        #[arg(long, value_enum)]
        gpu_class: ClassArg,
        /// GPUs offered.
        #[arg(long)]
        gpus: u16,
        /// Memory per GPU, GiB.
        #[arg(long)]
        vram: u16,
        /// Price per GPU-second, base units of the mint.
        #[arg(long)]
        price: u64,
        /// Worker keys allowed to speak for this provider (repeat; default: the signer).
        #[arg(long = "worker")]
        workers: Vec<Pubkey>,
    },
    /// Change location, endpoint, offer or workers.
    Update {
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        gpus: Option<u16>,
        #[arg(long)]
        price: Option<u64>,
        #[arg(long = "worker")]
        workers: Vec<Pubkey>,
    },
    /// Stake tokens (base units) from the signer's token account.
    Stake { amount: u64 },
    /// Start unbonding free stake (base units).
    Unstake { amount: u64 },
    /// Withdraw stake whose unbonding period is over.
    Withdraw,
    /// Show a provider (default: the signer's).
    Show { wallet: Option<Pubkey> },
    /// List providers.
    List {
        #[arg(long)]
        region: Option<String>,
        #[arg(long, value_enum)]
        gpu_class: Option<ClassArg>,
        /// Only providers with at least this many free GPUs.
        #[arg(long)]
        min_free: Option<u16>,
    },
}

/// `gpunet lease …`
#[derive(Subcommand, Debug)]
pub enum LeaseCmd {
    /// Open a lease: escrow price × GPUs × duration.
    Open {
        /// Provider wallet.
        #[arg(long)]
        provider: Pubkey,
        #[arg(long)]
        gpus: u16,
        /// Seconds paid up front.
        #[arg(long)]
        duration: i64,
        /// Most you pay per GPU-second (default: the provider's current price).
        #[arg(long)]
        max_price: Option<u64>,
        /// Lease nonce (default: the first unused).
        #[arg(long)]
        nonce: Option<u64>,
    },
    /// Add funds (base units) to a lease.
    TopUp { lease: Pubkey, amount: u64 },
    /// Close a lease: refund of unspent escrow.
    Close { lease: Pubkey },
    /// Show a lease.
    Show { lease: Pubkey },
    /// List leases (default: the signer's).
    List {
        #[arg(long, conflicts_with_all = ["provider", "keeper", "all"])]
        user: Option<Pubkey>,
        /// Provider wallet.
        #[arg(long, conflicts_with_all = ["keeper", "all"])]
        provider: Option<Pubkey>,
        /// Keeper wallet.
        #[arg(long, conflicts_with = "all")]
        keeper: Option<Pubkey>,
        #[arg(long)]
        all: bool,
    },
}

/// Sends with a spinner; turns SDK errors into sentences.
async fn send(
    client: &GpunetClient,
    what: &str,
    ixs: &[Instruction],
    signer: &Keypair,
    output: Output,
) -> Result<Signature> {
    let spinner = if output == Output::Table {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_message(format!("{what}: waiting for confirmation"));
        pb.enable_steady_tick(Duration::from_millis(100));
        Some(pb)
    } else {
        None
    };
    let res = client.send(ixs, signer, &[]).await;
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    res.map_err(|e| explain(e, what))
}

/// A person-readable error.
fn explain(e: SdkError, what: &str) -> anyhow::Error {
    match e {
        SdkError::Program { error, .. } => {
            anyhow!("{what} refused: {} — {}", error.name, error.message)
        }
        SdkError::Anchor { code, name, .. } => {
            anyhow!("{what} refused: {name} (Anchor error {code})")
        }
        SdkError::Token { message, .. } => {
            anyhow!("{what} refused by the token program: {message}")
        }
        SdkError::NotFound { kind, address } => anyhow!("no {kind} at {address}"),
        SdkError::Rpc(e) => anyhow!("{what}: cannot reach the cluster: {e}"),
        other => anyhow!("{what}: {other}"),
    }
}

async fn need_tokens(client: &GpunetClient, account: &Pubkey, need: u64) -> Result<()> {
    let have = client
        .token_balance(account)
        .await
        .map_err(|e| explain(e, "balance"))?;
    if have < need {
        bail!("insufficient funds: need {need}, have {have} (in {account})");
    }
    Ok(())
}

async fn config(client: &GpunetClient) -> Result<Config> {
    client.config().await.map_err(|e| match e {
        SdkError::NotFound { .. } => {
            anyhow!("gpunet is not initialised on this cluster (run `gpunet config init`)")
        }
        other => explain(other, "config"),
    })
}

fn print(output: Output, value: Value, table: impl FnOnce()) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        ),
        Output::Table => table(),
    }
}

fn location(bytes: &[u8; 16]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_string()
}

fn provider_json(address: &Pubkey, p: &Provider) -> Value {
    json!({
        "address": address.to_string(),
        "authority": p.authority.to_string(),
        "status": format!("{:?}", p.status),
        "region": location(&p.region),
        "zone": location(&p.zone),
        "gpu_class": format!("{:?}", p.gpu.class),
        "gpus": p.gpu.count,
        "gpus_leased": p.gpus_leased,
        "vram_gib": p.gpu.vram_gib,
        "price_per_gpu_second": p.gpu.price_per_gpu_second,
        "staked": p.staked,
        "locked": p.locked,
        "unbonding": p.unbonding,
        "unbonding_ends_at": p.unbonding_ends_at,
        "slashed_total": p.slashed_total,
        "score": p.score,
        "endpoint": p.endpoint,
        "workers": p.workers.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
    })
}

fn keeper_json(address: &Pubkey, k: &Keeper) -> Value {
    json!({
        "address": address.to_string(),
        "authority": k.authority.to_string(),
        "status": format!("{:?}", k.status),
        "index": k.index,
        "bond": k.bond,
        "unbonding_ends_at": k.unbonding_ends_at,
        "leases_assigned": k.leases_assigned,
        "leases_served": k.leases_served,
        "fees_earned": k.fees_earned,
    })
}

fn lease_json(address: &Pubkey, l: &Lease) -> Value {
    json!({
        "address": address.to_string(),
        "user": l.user.to_string(),
        "provider": l.provider.to_string(),
        "keeper": l.keeper.to_string(),
        "nonce": l.nonce,
        "status": format!("{:?}", l.status),
        "gpus": l.gpus,
        "price_per_gpu_second": l.price_per_gpu_second,
        "funded": l.funded,
        "funded_until": l.funded_until().ok(),
        "paid_provider": l.paid_provider,
        "paid_protocol": l.paid_protocol,
        "paid_keeper": l.paid_keeper,
        "compensation": l.compensation,
        "start": l.start,
        "paid_until": l.paid_until,
        "last_sequence": l.last_sequence,
    })
}

/// Prints rows as an aligned table with a header.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header.iter().map(|s| s.to_string()).collect()));
    for r in rows {
        println!("{}", line(r));
    }
}

/// Prints key/value pairs of a JSON object.
fn kv(value: &Value) {
    if let Some(map) = value.as_object() {
        let w = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k:<w$}  {v}");
        }
    }
}

fn done(output: Output, what: &str, sig: &Signature, extra: Value) {
    let mut v = json!({ "ok": true, "signature": sig.to_string() });
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    print(output, v.clone(), || {
        println!("{what}: done ({sig})");
        if let Some(e) = extra.as_object() {
            for (k, val) in e {
                println!(
                    "  {k}: {}",
                    val.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| val.to_string())
                );
            }
        }
    });
}

/// `gpunet config …`
pub async fn run_config(opts: &ChainOpts, cmd: ConfigCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        ConfigCmd::Init { mint, decimals } => {
            let admin = opts.signer()?;
            let mint = match mint {
                Some(m) => m,
                None => setup::create_mint(&client, &admin, &admin.pubkey(), decimals)
                    .await
                    .map_err(|e| explain(e, "create mint"))?,
            };
            let decimals = match client.rpc().get_account(&mint).await {
                Ok(a) if a.data.len() > 44 => a.data[44],
                _ => bail!("no mint at {mint}"),
            };
            let treasury = setup::init_config(
                &client,
                &admin,
                &mint,
                setup::default_params(decimals),
                false,
            )
            .await
            .map_err(|e| explain(e, "config init"))?;
            let v = json!({"admin": admin.pubkey().to_string(), "mint": mint.to_string(), "treasury": treasury.to_string()});
            print(opts.output, v.clone(), || {
                println!("gpunet initialised");
                kv(&v);
            });
        }
        ConfigCmd::Show => {
            let c = config(&client).await?;
            let p = &c.params;
            let v = json!({
                "admin": c.admin.to_string(),
                "pending_admin": (c.pending_admin != Pubkey::default()).then(|| c.pending_admin.to_string()),
                "mint": c.mint.to_string(),
                "treasury": c.treasury.to_string(),
                "paused": c.paused,
                "active_keepers": c.active_keepers,
                "protocol_fee_bps": p.protocol_fee_bps,
                "keeper_fee_bps": p.keeper_fee_bps,
                "min_stake_per_gpu": GpuClass::ALL.iter().map(|g| (format!("{g:?}"), json!(p.min_stake_per_gpu[g.index()]))).collect::<serde_json::Map<_, _>>(),
                "keeper_bond": p.keeper_bond,
                "unbonding_period_s": p.unbonding_period,
                "checkpoint_interval_s": p.checkpoint_interval,
                "grace_period_s": p.grace_period,
                "slash_fraction_bps": p.slash_fraction_bps,
                "slash_treasury_bps": p.slash_treasury_bps,
                "slash_quorum": p.slash_quorum,
                "max_keepers": p.max_keepers,
            });
            print(opts.output, v.clone(), || kv(&v));
        }
    }
    Ok(())
}

/// `gpunet keeper register|show|list`
pub async fn run_keeper(opts: &ChainOpts, cmd: KeeperChainCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        KeeperChainCmd::Register { endpoint } => {
            let w = opts.signer()?;
            let c = config(&client).await?;
            let from = token::ata(&w.pubkey(), &c.mint);
            need_tokens(&client, &from, c.params.keeper_bond).await?;
            let sig = send(
                &client,
                "keeper register",
                &[ix::keeper_register(&w.pubkey(), &from, &c.mint, &endpoint)],
                &w,
                opts.output,
            )
            .await?;
            done(
                opts.output,
                "keeper register",
                &sig,
                json!({"keeper": pda::keeper(&w.pubkey()).to_string(), "bond": c.params.keeper_bond, "endpoint": endpoint}),
            );
        }
        KeeperChainCmd::Update { endpoint } => {
            let w = opts.signer()?;
            let ix = ix::keeper_update(&w.pubkey(), &endpoint);
            let sig = send(&client, "keeper update", &[ix], &w, opts.output).await?;
            done(
                opts.output,
                "keeper update",
                &sig,
                json!({"endpoint": endpoint}),
            );
        }
        KeeperChainCmd::Drain | KeeperChainCmd::Deregister => {
            let w = opts.signer()?;
            let me = pda::keeper(&w.pubkey());
            let k = client
                .keeper(&w.pubkey())
                .await
                .map_err(|e| explain(e, "keeper"))?;
            // The active keeper with the highest index moves into the freed index.
            let active = config(&client).await?.active_keepers;
            let last = client
                .keepers()
                .await
                .map_err(|e| explain(e, "keepers"))?
                .into_iter()
                .find(|(a, o)| {
                    *a != me
                        && o.status == gpunet_sdk::KeeperStatus::Active
                        && o.index + 1 == active
                })
                .map(|(a, _)| a)
                .filter(|_| k.status == gpunet_sdk::KeeperStatus::Active);
            let (what, ix) = match cmd {
                KeeperChainCmd::Drain => ("keeper drain", ix::keeper_drain(&w.pubkey(), last)),
                _ => (
                    "keeper deregister",
                    ix::keeper_deregister(&w.pubkey(), last),
                ),
            };
            let sig = send(&client, what, &[ix], &w, opts.output).await?;
            let k = client
                .keeper(&w.pubkey())
                .await
                .map_err(|e| explain(e, "keeper"))?;
            done(
                opts.output,
                what,
                &sig,
                json!({"status": format!("{:?}", k.status), "leases_assigned": k.leases_assigned}),
            );
        }
        KeeperChainCmd::Show { wallet } => {
            let wallet = match wallet {
                Some(w) => w,
                None => opts.signer()?.pubkey(),
            };
            let k = client.keeper(&wallet).await.map_err(|e| match e {
                SdkError::NotFound { .. } => anyhow!("no keeper with that key ({wallet})"),
                other => explain(other, "keeper"),
            })?;
            let v = keeper_json(&pda::keeper(&wallet), &k);
            print(opts.output, v.clone(), || kv(&v));
        }
        KeeperChainCmd::List => {
            let list = client.keepers().await.map_err(|e| explain(e, "keepers"))?;
            let v = Value::Array(list.iter().map(|(a, k)| keeper_json(a, k)).collect());
            print(opts.output, v, || {
                table(
                    &[
                        "KEEPER WALLET",
                        "STATUS",
                        "INDEX",
                        "BOND",
                        "LEASES",
                        "SERVED",
                        "FEES",
                    ],
                    list.iter()
                        .map(|(_, k)| {
                            vec![
                                k.authority.to_string(),
                                format!("{:?}", k.status),
                                k.index.to_string(),
                                k.bond.to_string(),
                                k.leases_assigned.to_string(),
                                k.leases_served.to_string(),
                                k.fees_earned.to_string(),
                            ]
                        })
                        .collect(),
                )
            });
        }
    }
    Ok(())
}

/// `gpunet provider …`
pub async fn run_provider(opts: &ChainOpts, cmd: ProviderCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        ProviderCmd::Register {
            region,
            zone,
            endpoint,
            gpu_class,
            gpus,
            vram,
            price,
            workers,
        } => {
            let w = opts.signer()?;
            let c = config(&client).await?;
            let workers = if workers.is_empty() {
                vec![w.pubkey()]
            } else {
                workers
            };
            let args = ProviderRegisterArgs {
                region,
                zone,
                endpoint,
                gpu: GpuOffer {
                    class: gpu_class.into(),
                    count: gpus,
                    vram_gib: vram,
                    price_per_gpu_second: price,
                },
                workers,
            };
            let sig = send(
                &client,
                "provider register",
                &[ix::provider_register(&w.pubkey(), &c.mint, args)],
                &w,
                opts.output,
            )
            .await?;
            let min = c.min_stake(gpu_class.into(), gpus).unwrap_or(0);
            done(
                opts.output,
                "provider register",
                &sig,
                json!({"provider": pda::provider(&w.pubkey()).to_string(), "minimum_stake": min}),
            );
        }
        ProviderCmd::Update {
            region,
            zone,
            endpoint,
            gpus,
            price,
            workers,
        } => {
            let w = opts.signer()?;
            let current = client
                .provider(&w.pubkey())
                .await
                .map_err(|e| explain(e, "provider"))?;
            let gpu = (gpus.is_some() || price.is_some()).then(|| GpuOffer {
                count: gpus.unwrap_or(current.gpu.count),
                price_per_gpu_second: price.unwrap_or(current.gpu.price_per_gpu_second),
                ..current.gpu
            });
            let args = ProviderUpdateArgs {
                region,
                zone,
                endpoint,
                gpu,
                workers: (!workers.is_empty()).then_some(workers),
            };
            let sig = send(
                &client,
                "provider update",
                &[ix::provider_update(&w.pubkey(), args)],
                &w,
                opts.output,
            )
            .await?;
            done(opts.output, "provider update", &sig, json!({}));
        }
        ProviderCmd::Stake { amount } => {
            let w = opts.signer()?;
            let c = config(&client).await?;
            let from = token::ata(&w.pubkey(), &c.mint);
            need_tokens(&client, &from, amount).await?;
            let sig = send(
                &client,
                "provider stake",
                &[ix::provider_stake(&w.pubkey(), &from, &c.mint, amount)],
                &w,
                opts.output,
            )
            .await?;
            let p = client
                .provider(&w.pubkey())
                .await
                .map_err(|e| explain(e, "provider"))?;
            done(
                opts.output,
                "provider stake",
                &sig,
                json!({"staked": p.staked}),
            );
        }
        ProviderCmd::Unstake { amount } => {
            let w = opts.signer()?;
            let sig = send(
                &client,
                "provider unstake",
                &[ix::provider_unstake_request(&w.pubkey(), amount)],
                &w,
                opts.output,
            )
            .await?;
            let p = client
                .provider(&w.pubkey())
                .await
                .map_err(|e| explain(e, "provider"))?;
            done(
                opts.output,
                "provider unstake",
                &sig,
                json!({"unbonding": p.unbonding, "withdrawable_at": p.unbonding_ends_at}),
            );
        }
        ProviderCmd::Withdraw => {
            let w = opts.signer()?;
            let c = config(&client).await?;
            let to = token::ata(&w.pubkey(), &c.mint);
            let sig = send(
                &client,
                "provider withdraw",
                &[
                    token::create_ata(&w.pubkey(), &w.pubkey(), &c.mint),
                    ix::provider_withdraw(&w.pubkey(), &to, &c.mint),
                ],
                &w,
                opts.output,
            )
            .await?;
            done(opts.output, "provider withdraw", &sig, json!({}));
        }
        ProviderCmd::Show { wallet } => {
            let wallet = match wallet {
                Some(w) => w,
                None => opts.signer()?.pubkey(),
            };
            let p = client.provider(&wallet).await.map_err(|e| match e {
                SdkError::NotFound { .. } => anyhow!("no provider with that key ({wallet})"),
                other => explain(other, "provider"),
            })?;
            let v = provider_json(&pda::provider(&wallet), &p);
            print(opts.output, v.clone(), || kv(&v));
        }
        ProviderCmd::List {
            region,
            gpu_class,
            min_free,
        } => {
            let filter = ProviderFilter {
                region,
                class: gpu_class.map(Into::into),
                min_free_gpus: min_free,
                active_only: false,
            };
            let list = client
                .providers(&filter)
                .await
                .map_err(|e| explain(e, "providers"))?;
            let v = Value::Array(list.iter().map(|(a, p)| provider_json(a, p)).collect());
            print(opts.output, v, || {
                table(
                    &[
                        "PROVIDER WALLET",
                        "STATUS",
                        "REGION",
                        "ZONE",
                        "GPU",
                        "FREE",
                        "PRICE/GPU-S",
                        "STAKED",
                    ],
                    list.iter()
                        .map(|(_, p)| {
                            vec![
                                p.authority.to_string(),
                                format!("{:?}", p.status),
                                location(&p.region),
                                location(&p.zone),
                                format!(
                                    "{}× {:?} {} GiB",
                                    p.gpu.count, p.gpu.class, p.gpu.vram_gib
                                ),
                                p.gpu.count.saturating_sub(p.gpus_leased).to_string(),
                                p.gpu.price_per_gpu_second.to_string(),
                                p.staked.to_string(),
                            ]
                        })
                        .collect(),
                )
            });
        }
    }
    Ok(())
}

async fn parties(client: &GpunetClient, lease: &Pubkey) -> Result<(Lease, LeaseParties)> {
    let l = client.lease(lease).await.map_err(|e| match e {
        SdkError::NotFound { .. } => anyhow!("no lease at {lease}"),
        other => explain(other, "lease"),
    })?;
    let c = config(client).await?;
    let p = LeaseParties {
        lease: *lease,
        provider: l.provider,
        keeper: l.keeper,
        mint: c.mint,
        treasury: c.treasury,
    };
    Ok((l, p))
}

/// `gpunet lease …`
pub async fn run_lease(opts: &ChainOpts, cmd: LeaseCmd) -> Result<()> {
    let client = opts.client();
    match cmd {
        LeaseCmd::Open {
            provider,
            gpus,
            duration,
            max_price,
            nonce,
        } => {
            let user = opts.signer()?;
            let c = config(&client).await?;
            let p = client.provider(&provider).await.map_err(|e| match e {
                SdkError::NotFound { .. } => anyhow!("no provider with that key ({provider})"),
                other => explain(other, "provider"),
            })?;
            let max_price = max_price.unwrap_or(p.gpu.price_per_gpu_second);
            let deposit = p
                .gpu
                .price_per_gpu_second
                .checked_mul(u64::from(gpus))
                .and_then(|r| r.checked_mul(u64::try_from(duration).ok()?))
                .ok_or_else(|| anyhow!("price × GPUs × duration overflows"))?;
            let from = token::ata(&user.pubkey(), &c.mint);
            need_tokens(&client, &from, deposit).await?;
            let nonce = match nonce {
                Some(n) => n,
                None => {
                    let mut n = 0u64;
                    while client
                        .rpc()
                        .get_account(&pda::lease(&user.pubkey(), n))
                        .await
                        .is_ok()
                    {
                        n += 1;
                    }
                    n
                }
            };
            if c.active_keepers == 0 {
                bail!(
                    "no active keeper to verify a lease: register one first (`gpunet keeper register`)"
                );
            }
            let ix = ix::lease_open(
                &user.pubkey(),
                &user.pubkey(),
                &from,
                &pda::provider(&provider),
                &c.mint,
                LeaseOpenArgs {
                    nonce,
                    gpus,
                    duration,
                    max_price_per_gpu_second: max_price,
                },
            );
            let sig = send(&client, "lease open", &[ix], &user, opts.output).await?;
            let lease = pda::lease(&user.pubkey(), nonce);
            // Who verifies the lease is drawn from a slot hash after the open.
            client
                .draw_committee(&user, &lease)
                .await
                .map_err(|e| explain(e, "lease committee draw"))?;
            let keeper = client
                .lease(&lease)
                .await
                .map_err(|e| explain(e, "lease"))?
                .keeper;
            done(
                opts.output,
                "lease open",
                &sig,
                json!({"lease": lease.to_string(), "deposit": deposit, "keeper": keeper.to_string()}),
            );
        }
        LeaseCmd::TopUp { lease, amount } => {
            let funder = opts.signer()?;
            let (_, p) = parties(&client, &lease).await?;
            let from = token::ata(&funder.pubkey(), &p.mint);
            need_tokens(&client, &from, amount).await?;
            let sig = send(
                &client,
                "lease top-up",
                &[ix::lease_top_up(
                    &funder.pubkey(),
                    &from,
                    &lease,
                    &p.mint,
                    amount,
                )],
                &funder,
                opts.output,
            )
            .await?;
            let l = client
                .lease(&lease)
                .await
                .map_err(|e| explain(e, "lease"))?;
            done(
                opts.output,
                "lease top-up",
                &sig,
                json!({"funded": l.funded, "funded_until": l.funded_until().ok()}),
            );
        }
        LeaseCmd::Close { lease } => {
            let closer = opts.signer()?;
            let (l, p) = parties(&client, &lease).await?;
            let to = token::ata(&l.user, &p.mint);
            let escrow = client
                .token_balance(&pda::lease_vault(&lease))
                .await
                .map_err(|e| explain(e, "escrow"))?;
            let sig = send(
                &client,
                "lease close",
                &[
                    token::create_ata(&closer.pubkey(), &l.user, &p.mint),
                    ix::lease_close(
                        &closer.pubkey(),
                        &if l.status == gpunet_sdk::LeaseStatus::Ended {
                            p.ended()
                        } else {
                            p
                        },
                        &to,
                        &l.rent_payer,
                    ),
                ],
                &closer,
                opts.output,
            )
            .await?;
            done(
                opts.output,
                "lease close",
                &sig,
                json!({"refunded": escrow, "paid_provider": l.paid_provider}),
            );
        }
        LeaseCmd::Show { lease } => {
            let (l, _) = parties(&client, &lease).await?;
            let v = lease_json(&lease, &l);
            print(opts.output, v.clone(), || kv(&v));
        }
        LeaseCmd::List {
            user,
            provider,
            keeper,
            all,
        } => {
            let filter = if all {
                LeaseFilter::All
            } else if let Some(p) = provider {
                LeaseFilter::Provider(pda::provider(&p))
            } else if let Some(k) = keeper {
                LeaseFilter::Keeper(pda::keeper(&k))
            } else {
                LeaseFilter::User(match user {
                    Some(u) => u,
                    None => opts.signer()?.pubkey(),
                })
            };
            let list = client
                .leases(filter)
                .await
                .map_err(|e| explain(e, "leases"))?;
            let v = Value::Array(list.iter().map(|(a, l)| lease_json(a, l)).collect());
            print(opts.output, v, || {
                table(
                    &[
                        "LEASE",
                        "STATUS",
                        "GPUS",
                        "PRICE",
                        "FUNDED",
                        "PAID",
                        "FUNDED UNTIL",
                    ],
                    list.iter()
                        .map(|(a, l)| {
                            vec![
                                a.to_string(),
                                format!("{:?}", l.status),
                                l.gpus.to_string(),
                                l.price_per_gpu_second.to_string(),
                                l.funded.to_string(),
                                (l.paid_provider + l.paid_protocol + l.paid_keeper).to_string(),
                                l.funded_until().map(|t| t.to_string()).unwrap_or_default(),
                            ]
                        })
                        .collect(),
                )
            });
        }
    }
    Ok(())
}

/// `gpunet faucet WALLET`: localnet only — SOL by airdrop, tokens minted by the mint authority
/// (the signer, which `gpunet localnet` made the mint authority).
pub async fn run_faucet(opts: &ChainOpts, wallet: Pubkey, sol: u64, tokens: u64) -> Result<()> {
    let client = opts.client();
    let authority = opts.signer()?;
    if sol > 0 {
        let sig = client
            .rpc()
            .request_airdrop(&wallet, sol.saturating_mul(1_000_000_000))
            .await
            .context("airdrop (only a localnet or devnet faucet answers)")?;
        for _ in 0..60 {
            if client
                .rpc()
                .confirm_transaction(&sig)
                .await
                .unwrap_or(false)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if tokens > 0 {
        let c = config(&client).await?;
        setup::mint_to_wallet(&client, &authority, &authority, &c.mint, &wallet, tokens)
            .await
            .map_err(|e| explain(e, "mint tokens (the signer must be the mint authority)"))?;
    }
    let v = json!({"wallet": wallet.to_string(), "sol": sol, "tokens": tokens});
    print(opts.output, v.clone(), || {
        println!("funded {wallet}: {sol} SOL, {tokens} base units")
    });
    Ok(())
}
