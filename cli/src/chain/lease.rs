//! `gpunet lease open|top-up|resize|close|draw|show|list|audit` (`audit` in `audit.rs`).

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use gpunet_sdk::gpunet::instructions::LeaseOpenArgs;
use gpunet_sdk::gpunet::state::{Lease, LeaseStatus};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::{GpunetClient, LeaseFilter, pda, token};
use serde_json::{Value, json};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use super::{config, explain, explain_missing, need_tokens, send};
use crate::Global;
use crate::output::{Output, Spinner, done, kv, print, table};

/// `gpunet lease …`
#[derive(Subcommand, Debug)]
pub enum LeaseCmd {
    /// Open a lease: escrow price × GPUs × duration.
    Open(OpenArgs),
    /// Add funds (base units) to a lease.
    TopUp { lease: Pubkey, amount: u64 },
    /// Grow or shrink a lease without closing it: the new GPU count bills from now, and the
    /// escrow moves so that the lease stays funded until the same time (a grow deposits, a
    /// shrink refunds). Applies when the keeper's checkpoint reaches this moment.
    Resize {
        lease: Pubkey,
        /// The GPU count wanted.
        #[arg(long)]
        gpus: u16,
        /// Most a grow may deposit, base units (default: the quote now).
        #[arg(long)]
        max_deposit: Option<u64>,
    },
    /// Close a lease: refund of unspent escrow.
    Close { lease: Pubkey },
    /// Draw a pending lease's verification committee (anyone may; `lease open` does it).
    Draw { lease: Pubkey },
    /// Show a lease.
    Show { lease: Pubkey },
    /// Re-verify every checkpoint of a lease from the proof transcripts its keepers serve.
    Audit { lease: Pubkey },
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

/// `gpunet lease open`
#[derive(Args, Debug)]
pub struct OpenArgs {
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
}

/// `gpunet lease …`
pub async fn run(g: &Global, cmd: LeaseCmd) -> Result<()> {
    match cmd {
        LeaseCmd::Open(a) => open(g, a).await,
        LeaseCmd::TopUp { lease, amount } => top_up(g, lease, amount).await,
        LeaseCmd::Resize {
            lease,
            gpus,
            max_deposit,
        } => resize(g, lease, gpus, max_deposit).await,
        LeaseCmd::Close { lease } => close(g, lease).await,
        LeaseCmd::Draw { lease } => draw(g, lease).await,
        LeaseCmd::Audit { lease } => super::audit::run(g, lease).await,
        LeaseCmd::Show { lease } => {
            let (l, _) = parties(&g.client(), &lease).await?;
            let v = lease_json(&lease, &l);
            print(g.output, v.clone(), || kv(&v));
            Ok(())
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
                LeaseFilter::User(super::wallet_or_signer(g, user)?)
            };
            list(g, filter).await
        }
    }
}

fn lease_json(address: &Pubkey, l: &Lease) -> Value {
    json!({
        "address": address.to_string(),
        "user": l.user.to_string(),
        "provider": l.provider.to_string(),
        "keeper": l.keeper.to_string(),
        "nonce": l.nonce,
        "status": format!("{:?}", l.status),
        "committee": l.committee().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
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
        "pending_gpus": l.pending_gpus,
        "resize_at": l.resize_at,
        "withdrawn": l.withdrawn,
    })
}

async fn parties(client: &GpunetClient, lease: &Pubkey) -> Result<(Lease, LeaseParties)> {
    let l = client
        .lease(lease)
        .await
        .map_err(|e| explain_missing(e, "lease", format!("no lease at {lease}")))?;
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

/// The first lease nonce of `user` with no lease account.
async fn first_unused_nonce(client: &GpunetClient, user: &Pubkey) -> u64 {
    let mut n = 0u64;
    while client.rpc().get_account(&pda::lease(user, n)).await.is_ok() {
        n += 1;
    }
    n
}

async fn open(g: &Global, a: OpenArgs) -> Result<()> {
    let client = g.client();
    let user = g.signer()?;
    let c = config(&client).await?;
    let p = client.provider(&a.provider).await.map_err(|e| {
        explain_missing(
            e,
            "provider",
            format!("no provider with that key ({})", a.provider),
        )
    })?;
    let max_price = a.max_price.unwrap_or(p.gpu.price_per_gpu_second);
    let deposit = p
        .gpu
        .price_per_gpu_second
        .checked_mul(u64::from(a.gpus))
        .and_then(|r| r.checked_mul(u64::try_from(a.duration).ok()?))
        .ok_or_else(|| anyhow!("price × GPUs × duration overflows"))?;
    let from = token::ata(&user.pubkey(), &c.mint);
    need_tokens(&client, &from, deposit).await?;
    let nonce = match a.nonce {
        Some(n) => n,
        None => first_unused_nonce(&client, &user.pubkey()).await,
    };
    if c.active_keepers == 0 {
        bail!("no active keeper to verify a lease: register one first (`gpunet keeper register`)");
    }
    let ix = ix::lease_open(
        &user.pubkey(),
        &user.pubkey(),
        &from,
        &pda::provider(&a.provider),
        &c.mint,
        LeaseOpenArgs {
            nonce,
            gpus: a.gpus,
            duration: a.duration,
            max_price_per_gpu_second: max_price,
        },
    );
    let sig = send(&client, "lease open", &[ix], &user, g.output).await?;
    let lease = pda::lease(&user.pubkey(), nonce);
    // Who verifies the lease is drawn from a slot hash after the open.
    let keeper = draw_committee(&client, g.output, &user, &lease).await?;
    done(
        g.output,
        "lease open",
        &sig,
        json!({"lease": lease.to_string(), "deposit": deposit, "keeper": keeper.to_string()}),
    );
    Ok(())
}

/// Draws a pending lease's committee (waiting for the next slot) and returns its keeper.
async fn draw_committee(
    client: &GpunetClient,
    output: Output,
    payer: &Keypair,
    lease: &Pubkey,
) -> Result<Pubkey> {
    let sp = Spinner::start(
        output,
        "drawing the lease's committee from the next slot hash",
    );
    let res = client.draw_committee(payer, lease).await;
    sp.stop();
    res.map_err(|e| explain(e, "lease committee draw"))?;
    Ok(client
        .lease(lease)
        .await
        .map_err(|e| explain(e, "lease"))?
        .keeper)
}

/// `gpunet lease draw`: the committee crank, for a lease someone else opened.
async fn draw(g: &Global, lease: Pubkey) -> Result<()> {
    let client = g.client();
    let payer = g.signer()?;
    let keeper = draw_committee(&client, g.output, &payer, &lease).await?;
    let l = client
        .lease(&lease)
        .await
        .map_err(|e| explain(e, "lease"))?;
    let v = json!({
        "lease": lease.to_string(),
        "keeper": keeper.to_string(),
        "committee": l.committee().iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "start": l.start,
    });
    print(g.output, v.clone(), || kv(&v));
    Ok(())
}

async fn top_up(g: &Global, lease: Pubkey, amount: u64) -> Result<()> {
    let client = g.client();
    let funder = g.signer()?;
    let (_, p) = parties(&client, &lease).await?;
    let from = token::ata(&funder.pubkey(), &p.mint);
    need_tokens(&client, &from, amount).await?;
    let ix = ix::lease_top_up(&funder.pubkey(), &from, &lease, &p.mint, amount);
    let sig = send(&client, "lease top-up", &[ix], &funder, g.output).await?;
    let l = client
        .lease(&lease)
        .await
        .map_err(|e| explain(e, "lease"))?;
    done(
        g.output,
        "lease top-up",
        &sig,
        json!({"funded": l.funded, "funded_until": l.funded_until().ok()}),
    );
    Ok(())
}

async fn resize(g: &Global, lease: Pubkey, gpus: u16, max_deposit: Option<u64>) -> Result<()> {
    let client = g.client();
    let user = g.signer()?;
    let l = client
        .lease(&lease)
        .await
        .map_err(|e| explain(e, "lease"))?;
    if l.user != user.pubkey() {
        bail!(
            "lease {lease} belongs to {}, not to the signer {}",
            l.user,
            user.pubkey()
        );
    }
    let now = client.chain_time().await.map_err(|e| explain(e, "clock"))?;
    if let Some(q) = gpunet_sdk::resize::quote(&l, gpus, now)
        && q.deposit > 0
    {
        let mint = config(&client).await?.mint;
        need_tokens(&client, &token::ata(&user.pubkey(), &mint), q.deposit).await?;
    }
    let (sig, r) = gpunet_sdk::resize::resize(&client, &user, &lease, gpus, max_deposit)
        .await
        .map_err(|e| explain(e, "lease"))?;
    done(
        g.output,
        "lease resize",
        &sig,
        json!({
            "gpus_from": r.gpus_from,
            "gpus_to": r.gpus_to,
            "deposit": r.deposit,
            "refund": r.refund,
            "applied": r.applied,
            "bills_from": r.resize_at,
            "funded_until": l.funded_until().ok(),
        }),
    );
    Ok(())
}

async fn close(g: &Global, lease: Pubkey) -> Result<()> {
    let (sig, v) = close_lease(g, lease).await?;
    done(g.output, "lease close", &sig, v);
    Ok(())
}

/// Closes `lease` (refunding the unspent escrow to its user); the signature and what was
/// refunded and paid.
pub(crate) async fn close_lease(
    g: &Global,
    lease: Pubkey,
) -> Result<(solana_sdk::signature::Signature, Value)> {
    let client = g.client();
    let closer = g.signer()?;
    let (l, p) = parties(&client, &lease).await?;
    let to = token::ata(&l.user, &p.mint);
    let escrow = client
        .token_balance(&pda::lease_vault(&lease))
        .await
        .map_err(|e| explain(e, "escrow"))?;
    let ixs = [
        token::create_ata(&closer.pubkey(), &l.user, &p.mint),
        // A slash released the provider and keeper: an ended lease closes without them.
        ix::lease_close(
            &closer.pubkey(),
            &if l.status == LeaseStatus::Ended {
                p.ended()
            } else {
                p
            },
            &to,
            &l.rent_payer,
        ),
    ];
    let sig = send(&client, "lease close", &ixs, &closer, g.output).await?;
    Ok((
        sig,
        json!({"refunded": escrow, "paid_provider": l.paid_provider}),
    ))
}

async fn list(g: &Global, filter: LeaseFilter) -> Result<()> {
    let list = g
        .client()
        .leases(filter)
        .await
        .map_err(|e| explain(e, "leases"))?;
    let v = Value::Array(list.iter().map(|(a, l)| lease_json(a, l)).collect());
    let header = [
        "LEASE",
        "STATUS",
        "GPUS",
        "PRICE",
        "FUNDED",
        "PAID",
        "FUNDED UNTIL",
    ];
    let rows = list
        .iter()
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
        .collect();
    print(g.output, v, || table(&header, rows));
    Ok(())
}
