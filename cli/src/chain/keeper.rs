//! `gpunet keeper register|show|list|run`: the keeper's on-chain account, and its daemon (run
//! in [`crate::daemon`]) — one command enum for both.

use anyhow::Result;
use clap::Subcommand;
use gpunet_sdk::gpunet::state::Keeper;
use gpunet_sdk::{ix, pda, token};
use serde_json::{Value, json};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{config, explain, explain_missing, need_tokens, send, wallet_or_signer};
use crate::Global;
use crate::daemon::KeeperRunArgs;
use crate::output::{done, kv, print, table};

/// `gpunet keeper …`
#[derive(Subcommand, Debug)]
pub enum KeeperCmd {
    /// Bond the configured amount, publish the keeper's endpoint and join the keeper set.
    Register {
        /// The keeper's public gRPC URL (users and workers find it on chain).
        #[arg(
            long,
            env = "GPUNET_KEEPER_ENDPOINT",
            default_value = "http://127.0.0.1:7400"
        )]
        endpoint: String,
    },
    /// Publish a new gRPC endpoint for the signer's keeper.
    Update {
        /// The keeper's public gRPC URL.
        #[arg(long)]
        endpoint: String,
    },
    /// Stop taking new leases; the keeper's leases pass to their successors, then
    /// `keeper deregister` starts the unbonding.
    Drain,
    /// Leave the keeper set once no lease is left (the bond comes back after unbonding).
    Deregister,
    /// Show a keeper's on-chain account (default: the signer's).
    Show {
        /// Keeper wallet.
        wallet: Option<Pubkey>,
    },
    /// List on-chain keepers.
    List,
    /// Run a keeper until SIGINT/SIGTERM, signing with its keeper wallet (`--keypair`).
    Run(KeeperRunArgs),
}

/// `gpunet keeper …`
pub async fn run(g: &Global, cmd: KeeperCmd) -> Result<()> {
    match cmd {
        KeeperCmd::Register { endpoint } => register(g, &endpoint).await,
        KeeperCmd::Update { endpoint } => update(g, &endpoint).await,
        KeeperCmd::Drain => leave(g, true).await,
        KeeperCmd::Deregister => leave(g, false).await,
        KeeperCmd::Show { wallet } => show(g, wallet).await,
        KeeperCmd::List => list(g).await,
        KeeperCmd::Run(args) => crate::daemon::run_keeper(g, args).await,
    }
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
        "slashed_total": k.slashed_total,
        "endpoint": k.endpoint,
    })
}

async fn register(g: &Global, endpoint: &str) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let c = config(&client).await?;
    let from = token::ata(&w.pubkey(), &c.mint);
    need_tokens(&client, &from, c.params.keeper_bond).await?;
    let ix = ix::keeper_register(&w.pubkey(), &from, &c.mint, endpoint);
    let sig = send(&client, "keeper register", &[ix], &w, g.output).await?;
    done(
        g.output,
        "keeper register",
        &sig,
        json!({"keeper": pda::keeper(&w.pubkey()).to_string(), "bond": c.params.keeper_bond, "endpoint": endpoint}),
    );
    Ok(())
}

async fn update(g: &Global, endpoint: &str) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let ix = ix::keeper_update(&w.pubkey(), endpoint);
    let sig = send(&client, "keeper update", &[ix], &w, g.output).await?;
    done(
        g.output,
        "keeper update",
        &sig,
        json!({"endpoint": endpoint}),
    );
    Ok(())
}

/// `keeper drain` (`drain`) or `keeper deregister`: both take an active keeper out of the
/// active set, which stays dense by moving the keeper with the highest index into its place.
async fn leave(g: &Global, drain: bool) -> Result<()> {
    let client = g.client();
    let w = g.signer()?;
    let me = pda::keeper(&w.pubkey());
    client
        .keeper(&w.pubkey())
        .await
        .map_err(|e| explain(e, "keeper"))?;
    let last = client
        .last_active_keeper(&me)
        .await
        .map_err(|e| explain(e, "keepers"))?;
    let (what, ix) = if drain {
        ("keeper drain", ix::keeper_drain(&w.pubkey(), last))
    } else {
        (
            "keeper deregister",
            ix::keeper_deregister(&w.pubkey(), last),
        )
    };
    let sig = send(&client, what, &[ix], &w, g.output).await?;
    let k = client
        .keeper(&w.pubkey())
        .await
        .map_err(|e| explain(e, "keeper"))?;
    done(
        g.output,
        what,
        &sig,
        json!({"status": format!("{:?}", k.status), "leases_assigned": k.leases_assigned}),
    );
    Ok(())
}

async fn show(g: &Global, wallet: Option<Pubkey>) -> Result<()> {
    let wallet = wallet_or_signer(g, wallet)?;
    let k =
        g.client().keeper(&wallet).await.map_err(|e| {
            explain_missing(e, "keeper", format!("no keeper with that key ({wallet})"))
        })?;
    let v = keeper_json(&pda::keeper(&wallet), &k);
    print(g.output, v.clone(), || kv(&v));
    Ok(())
}

async fn list(g: &Global) -> Result<()> {
    let list = g
        .client()
        .keepers()
        .await
        .map_err(|e| explain(e, "keepers"))?;
    let v = Value::Array(list.iter().map(|(a, k)| keeper_json(a, k)).collect());
    let header = [
        "KEEPER WALLET",
        "STATUS",
        "INDEX",
        "BOND",
        "LEASES",
        "SERVED",
        "FEES",
    ];
    let rows = list
        .iter()
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
        .collect();
    print(g.output, v, || table(&header, rows));
    Ok(())
}
