//! `gpunet provider register|update|stake|unstake|withdraw|show|list`.

use anyhow::Result;
use clap::{Args, Subcommand};
use gpunet_sdk::gpunet::instructions::{ProviderRegisterArgs, ProviderUpdateArgs};
use gpunet_sdk::gpunet::state::{GpuOffer, Provider};
use gpunet_sdk::{ProviderFilter, ix, location, pda, token};
use serde_json::{Value, json};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{ClassArg, config, explain, explain_missing, need_tokens, send, wallet_or_signer};
use crate::Global;
use crate::output::{done, kv, print, table};

/// `gpunet provider …`
#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Register as a GPU provider.
    Register(RegisterArgs),
    /// Change location, endpoint, offer or workers.
    Update(UpdateArgs),
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

/// `gpunet provider register`
#[derive(Args, Debug)]
pub struct RegisterArgs {
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
}

/// `gpunet provider update`
#[derive(Args, Debug)]
pub struct UpdateArgs {
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
}

/// `gpunet provider …`
pub async fn run(g: &Global, cmd: ProviderCmd) -> Result<()> {
    match cmd {
        ProviderCmd::Register(a) => register(g, a).await,
        ProviderCmd::Update(a) => update(g, a).await,
        ProviderCmd::Stake { amount } => stake(g, amount).await,
        ProviderCmd::Unstake { amount } => unstake(g, amount).await,
        ProviderCmd::Withdraw => withdraw(g).await,
        ProviderCmd::Show { wallet } => show(g, wallet).await,
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
            list(g, &filter).await
        }
    }
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

async fn register(g: &Global, a: RegisterArgs) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let c = config(&client).await?;
    let workers = if a.workers.is_empty() {
        vec![w.pubkey()]
    } else {
        a.workers
    };
    let args = ProviderRegisterArgs {
        region: a.region,
        zone: a.zone,
        endpoint: a.endpoint,
        gpu: GpuOffer {
            class: a.gpu_class.into(),
            count: a.gpus,
            vram_gib: a.vram,
            price_per_gpu_second: a.price,
        },
        workers,
    };
    let ix = ix::provider_register(&w.pubkey(), &c.mint, args);
    let sig = send(&client, "provider register", &[ix], &w, g.output).await?;
    let min = c.min_stake(a.gpu_class.into(), a.gpus).unwrap_or(0);
    done(
        g.output,
        "provider register",
        &sig,
        json!({"provider": pda::provider(&w.pubkey()).to_string(), "minimum_stake": min}),
    );
    Ok(())
}

async fn update(g: &Global, a: UpdateArgs) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let current = client
        .provider(&w.pubkey())
        .await
        .map_err(|e| explain(e, "provider"))?;
    let gpu = (a.gpus.is_some() || a.price.is_some()).then(|| GpuOffer {
        count: a.gpus.unwrap_or(current.gpu.count),
        price_per_gpu_second: a.price.unwrap_or(current.gpu.price_per_gpu_second),
        ..current.gpu
    });
    let args = ProviderUpdateArgs {
        region: a.region,
        zone: a.zone,
        endpoint: a.endpoint,
        gpu,
        workers: (!a.workers.is_empty()).then_some(a.workers),
    };
    let ix = ix::provider_update(&w.pubkey(), args);
    let sig = send(&client, "provider update", &[ix], &w, g.output).await?;
    done(g.output, "provider update", &sig, json!({}));
    Ok(())
}

async fn stake(g: &Global, amount: u64) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let c = config(&client).await?;
    let from = token::ata(&w.pubkey(), &c.mint);
    need_tokens(&client, &from, amount).await?;
    let ix = ix::provider_stake(&w.pubkey(), &from, &c.mint, amount);
    let sig = send(&client, "provider stake", &[ix], &w, g.output).await?;
    let p = client
        .provider(&w.pubkey())
        .await
        .map_err(|e| explain(e, "provider"))?;
    done(
        g.output,
        "provider stake",
        &sig,
        json!({"staked": p.staked}),
    );
    Ok(())
}

async fn unstake(g: &Global, amount: u64) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let ix = ix::provider_unstake_request(&w.pubkey(), amount);
    let sig = send(&client, "provider unstake", &[ix], &w, g.output).await?;
    let p = client
        .provider(&w.pubkey())
        .await
        .map_err(|e| explain(e, "provider"))?;
    done(
        g.output,
        "provider unstake",
        &sig,
        json!({"unbonding": p.unbonding, "withdrawable_at": p.unbonding_ends_at}),
    );
    Ok(())
}

async fn withdraw(g: &Global) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let c = config(&client).await?;
    let to = token::ata(&w.pubkey(), &c.mint);
    let ixs = [
        token::create_ata(&w.pubkey(), &w.pubkey(), &c.mint),
        ix::provider_withdraw(&w.pubkey(), &to, &c.mint),
    ];
    let sig = send(&client, "provider withdraw", &ixs, &w, g.output).await?;
    done(g.output, "provider withdraw", &sig, json!({}));
    Ok(())
}

async fn show(g: &Global, wallet: Option<Pubkey>) -> Result<()> {
    let wallet = wallet_or_signer(g, wallet)?;
    let p = g.client().provider(&wallet).await.map_err(|e| {
        explain_missing(
            e,
            "provider",
            format!("no provider with that key ({wallet})"),
        )
    })?;
    let v = provider_json(&pda::provider(&wallet), &p);
    print(g.output, v.clone(), || kv(&v));
    Ok(())
}

async fn list(g: &Global, filter: &ProviderFilter) -> Result<()> {
    let list = g
        .client()
        .providers(filter)
        .await
        .map_err(|e| explain(e, "providers"))?;
    let v = Value::Array(list.iter().map(|(a, p)| provider_json(a, p)).collect());
    let header = [
        "PROVIDER WALLET",
        "STATUS",
        "REGION",
        "ZONE",
        "GPU",
        "FREE",
        "PRICE/GPU-S",
        "STAKED",
    ];
    let rows = list
        .iter()
        .map(|(_, p)| {
            vec![
                p.authority.to_string(),
                format!("{:?}", p.status),
                location(&p.region),
                location(&p.zone),
                format!("{}× {:?} {} GiB", p.gpu.count, p.gpu.class, p.gpu.vram_gib),
                p.gpu.count.saturating_sub(p.gpus_leased).to_string(),
                p.gpu.price_per_gpu_second.to_string(),
                p.staked.to_string(),
            ]
        })
        .collect();
    print(g.output, v, || table(&header, rows));
    Ok(())
}
