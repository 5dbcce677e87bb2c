//! `gpunet config init|show`: the protocol config (admin).

use anyhow::{Result, bail};
use clap::Subcommand;
use gpunet_sdk::gpunet::state::GpuClass;
use gpunet_sdk::setup;
use serde_json::json;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use super::{config, explain};
use crate::Global;
use crate::output::{kv, print};

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

/// `gpunet config …`
pub async fn run(g: &Global, cmd: ConfigCmd) -> Result<()> {
    match cmd {
        ConfigCmd::Init { mint, decimals } => init(g, mint, decimals).await,
        ConfigCmd::Show => show(g).await,
    }
}

async fn init(g: &Global, mint: Option<Pubkey>, decimals: u8) -> Result<()> {
    let client = g.client();
    let admin = g.signer()?;
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
    print(g.output, v.clone(), || {
        println!("gpunet initialised");
        kv(&v);
    });
    Ok(())
}

async fn show(g: &Global) -> Result<()> {
    let c = config(&g.client()).await?;
    let p = &c.params;
    let min_stake: serde_json::Map<_, _> = GpuClass::ALL
        .iter()
        .map(|g| (format!("{g:?}"), json!(p.min_stake_per_gpu[g.index()])))
        .collect();
    let v = json!({
        "admin": c.admin.to_string(),
        "pending_admin": (c.pending_admin != Pubkey::default()).then(|| c.pending_admin.to_string()),
        "mint": c.mint.to_string(),
        "treasury": c.treasury.to_string(),
        "paused": c.paused,
        "active_keepers": c.active_keepers,
        "protocol_fee_bps": p.protocol_fee_bps,
        "keeper_fee_bps": p.keeper_fee_bps,
        "min_stake_per_gpu": min_stake,
        "keeper_bond": p.keeper_bond,
        "unbonding_period_s": p.unbonding_period,
        "checkpoint_interval_s": p.checkpoint_interval,
        "grace_period_s": p.grace_period,
        "slash_fraction_bps": p.slash_fraction_bps,
        "slash_treasury_bps": p.slash_treasury_bps,
        "slash_quorum": p.slash_quorum,
        "max_keepers": p.max_keepers,
        "committee_size": p.committee_size,
        "slash_compensation_bps": p.slash_compensation_bps,
        "keeper_slash_fraction_bps": p.keeper_slash_fraction_bps,
        "jail_period_s": p.jail_period,
        "param_change_delay_s": p.param_change_delay,
        "pending_params_at": (c.pending_params_at != 0).then_some(c.pending_params_at),
    });
    print(g.output, v.clone(), || kv(&v));
    Ok(())
}
