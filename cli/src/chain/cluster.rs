//! `gpunet cluster open|list|show|close`: a spec matched across providers
//! ([`gpunet_sdk::cluster`]), opened as one lease per provider, addressed by one id.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use gpunet_sdk::cluster::{self, ClusterSpec, Pick};
use gpunet_sdk::{Lease, LeaseStatus, Provider, ProviderFilter, token};
use serde_json::{Value, json};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{ClassArg, config, explain, need_tokens};
use crate::Global;
use crate::output::{Output, Spinner, print, table};

/// `gpunet cluster …`
#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Match a spec against the providers on chain and open one lease per provider picked
    /// (atomically when they fit one transaction; otherwise a failure closes what was opened);
    /// `--into ID` grows an existing cluster with them.
    Open(OpenArgs),
    /// List your clusters.
    List,
    /// Show a cluster's leases: provider, zone, GPUs, keeper.
    Show {
        /// The cluster id (`cluster list`).
        id: u32,
    },
    /// Close every lease of a cluster (unspent escrow refunded).
    Close {
        /// The cluster id.
        id: u32,
    },
}

/// `gpunet cluster open`
#[derive(Args, Debug)]
pub struct OpenArgs {
    /// GPUs in all.
    #[arg(long)]
    gpus: u16,
    /// Only this GPU class.
    #[arg(long, value_enum)]
    gpu_class: Option<ClassArg>,
    /// Only these regions (comma-separated, as providers registered them).
    #[arg(long, value_delimiter = ',')]
    regions: Vec<String>,
    /// Only providers with at least this much memory per GPU, GiB.
    #[arg(long, default_value_t = 0)]
    min_vram: u16,
    /// The most paid per GPU-second, base units (default: any price).
    #[arg(long)]
    max_price: Option<u64>,
    /// Spread the GPUs evenly over at least two zones.
    #[arg(long)]
    spread_zones: bool,
    /// Seconds paid up front for each lease.
    #[arg(long)]
    duration: i64,
    /// Grow your cluster ID instead: the leases opened join it.
    #[arg(long, value_name = "ID")]
    into: Option<u32>,
    /// Show the plan only; open nothing.
    #[arg(long)]
    dry_run: bool,
    /// The cluster's ML stack (a runtime env TOML file, as `task submit --runtime-env`):
    /// once the leases' clusters are ready it is built on every worker, so the first tasks
    /// that name it start warm; the command waits for that and reports each worker.
    #[arg(long, value_name = "FILE")]
    runtime_env: Option<std::path::PathBuf>,
    /// With --runtime-env: the longest wait for the clusters to be ready and the env built,
    /// seconds.
    #[arg(long, default_value_t = 900.0)]
    ready_timeout: f64,
}

/// `gpunet cluster …`
pub async fn run(g: &Global, cmd: ClusterCmd) -> Result<()> {
    match cmd {
        ClusterCmd::Open(a) => open(g, a).await,
        ClusterCmd::List => list(g).await,
        ClusterCmd::Show { id } => show(g, id).await,
        ClusterCmd::Close { id } => close(g, id).await,
    }
}

fn pick_json(p: &Pick) -> Value {
    json!({
        "provider": p.provider.to_string(),
        "region": p.region,
        "zone": p.zone,
        "gpus": p.gpus,
        "price": p.price,
    })
}

async fn open(g: &Global, a: OpenArgs) -> Result<()> {
    if a.duration <= 0 {
        bail!("--duration: a positive number of seconds");
    }
    let client = g.client();
    let user = g.signer()?;
    let c = config(&client).await?;
    let providers = client
        .providers(&ProviderFilter::default())
        .await
        .map_err(|e| explain(e, "providers"))?;
    let spec = ClusterSpec {
        gpus: a.gpus,
        class: a.gpu_class.map(Into::into),
        regions: a.regions.clone(),
        min_vram_gib: a.min_vram,
        max_price: a.max_price,
        spread_zones: a.spread_zones,
    };
    let picks = cluster::choose(&spec, &providers, &c).context("cluster open")?;
    let deposit: u64 = picks
        .iter()
        .map(|p| {
            p.price
                .checked_mul(u64::from(p.gpus))
                .and_then(|r| r.checked_mul(a.duration as u64))
                .ok_or_else(|| anyhow!("price × GPUs × duration overflows"))
        })
        .sum::<Result<u64>>()?;
    if g.output == Output::Table {
        eprintln!(
            "plan: {} GPUs from {} provider(s), {deposit} base units in escrow",
            a.gpus,
            picks.len()
        );
        table(
            &["PROVIDER", "REGION", "ZONE", "GPUS", "PRICE"],
            picks
                .iter()
                .map(|p| {
                    vec![
                        p.provider.to_string(),
                        p.region.clone(),
                        p.zone.clone(),
                        p.gpus.to_string(),
                        p.price.to_string(),
                    ]
                })
                .collect(),
        );
    }
    if a.dry_run {
        if g.output == Output::Json {
            print(
                g.output,
                json!({"plan": picks.iter().map(pick_json).collect::<Vec<_>>(), "deposit": deposit}),
                || {},
            );
        }
        return Ok(());
    }
    if c.active_keepers == 0 {
        bail!("no active keeper to verify a lease: register one first (`gpunet keeper register`)");
    }
    need_tokens(&client, &token::ata(&user.pubkey(), &c.mint), deposit).await?;
    let (id, first_index) = match a.into {
        // Grown: the new leases take the indices after the cluster's last one.
        Some(id) => {
            let leases = leases_of(g, id).await?;
            let last = leases
                .iter()
                .filter_map(|(_, l)| cluster::cluster_of(l.nonce).map(|(_, i)| i))
                .max()
                .unwrap_or(0);
            let next = last
                .checked_add(1)
                .ok_or_else(|| anyhow!("cluster {id} has no lease index left"))?;
            (id, next)
        }
        None => (
            cluster::unused_id(&client, &user.pubkey())
                .await
                .map_err(|e| explain(e, "clusters"))?,
            0,
        ),
    };
    // The env is read (and its working directory packed) before any money moves.
    let env = match &a.runtime_env {
        Some(p) => Some(
            crate::runtime_env_file::RuntimeEnvFile::load(p)?
                .to_proto()?
                .ok_or_else(|| anyhow!("--runtime-env {}: names nothing", p.display()))?,
        ),
        None => None,
    };
    let sp = Spinner::start(g.output, format!("cluster {id}: opening"));
    let res = cluster::open(
        &client,
        &user,
        id,
        first_index,
        &picks,
        a.duration,
        a.max_price,
        &|step| sp.set(format!("cluster {id}: {step}")),
    )
    .await;
    sp.stop();
    let opened = res.map_err(|e| anyhow!("cluster open: {e}"))?;
    let mut leases = Vec::new();
    for (lease, p) in &opened.leases {
        let l = client.lease(lease).await.map_err(|e| explain(e, "lease"))?;
        let mut v = pick_json(p);
        v["lease"] = json!(lease.to_string());
        v["keeper"] = json!(l.keeper.to_string());
        leases.push(v);
    }
    let built = match env {
        Some(env) => Some(
            crate::cluster_task::build_env(
                g,
                id,
                env,
                std::time::Duration::from_secs_f64(a.ready_timeout.max(1.0)),
            )
            .await,
        ),
        None => None,
    };
    let mut v = json!({
        "cluster": id,
        "gpus": a.gpus,
        "deposit": deposit,
        "transactions": opened.transactions,
        "atomic": opened.transactions == 1,
        "leases": leases,
    });
    let built = match built {
        Some(Ok(b)) => {
            v["runtime_env"] = b.json();
            Some(b)
        }
        Some(Err(e)) => {
            v["runtime_env"] = json!({ "error": format!("{e:#}") });
            None
        }
        None => None,
    };
    let env_error = v["runtime_env"]["error"].as_str().map(String::from);
    print(g.output, v, || {
        println!(
            "cluster {id}: {} GPUs in {} lease(s), opened in {} transaction(s){}",
            a.gpus,
            opened.leases.len(),
            opened.transactions,
            if opened.transactions == 1 {
                " (atomically)"
            } else {
                ""
            }
        );
        for (lease, p) in &opened.leases {
            println!("  {lease}  {} GPU(s) in {}/{}", p.gpus, p.region, p.zone);
        }
        if let Some(b) = &built {
            b.print();
        }
    });
    // The leases stay open either way: say what failed and exit non-zero.
    match (&a.runtime_env, &built) {
        (Some(_), None) => bail!(
            "cluster {id} is open, but its runtime env could not be built: {}",
            env_error.unwrap_or_default()
        ),
        (_, Some(b)) if !b.failed.is_empty() => bail!(
            "cluster {id} is open, but its runtime env failed on {} of {} workers",
            b.failed.len(),
            b.workers
        ),
        _ => Ok(()),
    }
}

async fn list(g: &Global) -> Result<()> {
    let client = g.client();
    let user = g.signer()?;
    let all = cluster::clusters(&client, &user.pubkey())
        .await
        .map_err(|e| explain(e, "clusters"))?;
    let rows: Vec<(u32, usize, u32, usize)> = all
        .iter()
        .map(|(id, ls)| {
            let gpus = ls.iter().map(|(_, l)| u32::from(l.gpus)).sum();
            let active = ls
                .iter()
                .filter(|(_, l)| l.status == LeaseStatus::Active)
                .count();
            (*id, ls.len(), gpus, active)
        })
        .collect();
    let v = Value::Array(
        rows.iter()
            .map(|(id, n, gpus, active)| {
                json!({"cluster": id, "leases": n, "gpus": gpus, "active": active})
            })
            .collect(),
    );
    print(g.output, v, || {
        table(
            &["CLUSTER", "LEASES", "GPUS", "ACTIVE LEASES"],
            rows.iter()
                .map(|(id, n, gpus, active)| {
                    vec![
                        id.to_string(),
                        n.to_string(),
                        gpus.to_string(),
                        active.to_string(),
                    ]
                })
                .collect(),
        )
    });
    Ok(())
}

/// The leases of the signer's cluster `id`, or why there are none.
async fn leases_of(g: &Global, id: u32) -> Result<Vec<(Pubkey, Lease)>> {
    let user = g.signer()?;
    let mut all = cluster::clusters(&g.client(), &user.pubkey())
        .await
        .map_err(|e| explain(e, "clusters"))?;
    all.remove(&id)
        .ok_or_else(|| anyhow!("no cluster {id} of {}", user.pubkey()))
}

async fn show(g: &Global, id: u32) -> Result<()> {
    let client = g.client();
    let leases = leases_of(g, id).await?;
    let mut rows = Vec::new();
    for (a, l) in &leases {
        let p = client
            .fetch::<Provider>("provider", &l.provider)
            .await
            .map_err(|e| explain(e, "provider"))?;
        rows.push(json!({
            "lease": a.to_string(),
            "status": format!("{:?}", l.status),
            "provider": l.provider.to_string(),
            "region": gpunet_sdk::location(&p.region),
            "zone": gpunet_sdk::location(&p.zone),
            "gpus": l.gpus,
            "keeper": l.keeper.to_string(),
        }));
    }
    let v = json!({"cluster": id, "leases": rows});
    print(g.output, v.clone(), || {
        table(
            &["LEASE", "STATUS", "REGION", "ZONE", "GPUS", "KEEPER"],
            rows.iter()
                .map(|r| {
                    ["lease", "status", "region", "zone", "gpus", "keeper"]
                        .iter()
                        .map(|k| crate::output::plain(&r[*k]))
                        .collect()
                })
                .collect(),
        )
    });
    Ok(())
}

async fn close(g: &Global, id: u32) -> Result<()> {
    let leases = leases_of(g, id).await?;
    let mut closed = Vec::new();
    for (lease, _) in &leases {
        let (sig, mut v) = super::lease::close_lease(g, *lease)
            .await
            .with_context(|| format!("cluster {id}: lease {lease}"))?;
        v["lease"] = json!(lease.to_string());
        v["signature"] = json!(sig.to_string());
        closed.push(v);
    }
    let refunded: u64 = closed.iter().filter_map(|v| v["refunded"].as_u64()).sum();
    let v = json!({"cluster": id, "closed": closed, "refunded": refunded});
    print(g.output, v, || {
        println!(
            "cluster {id}: {} lease(s) closed, {refunded} base units refunded",
            closed.len()
        )
    });
    Ok(())
}
