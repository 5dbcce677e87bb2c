//! `gpunet faucet WALLET`: localnet (or devnet) only — SOL by airdrop, tokens minted by the
//! mint authority (the signer, which `gpunet localnet` made the mint authority).

use anyhow::{Context, Result};
use clap::Args;
use gpunet_sdk::setup;
use serde_json::json;
use solana_sdk::pubkey::Pubkey;

use super::{config, explain};
use crate::Global;
use crate::output::print;

/// `gpunet faucet`
#[derive(Args, Debug)]
pub struct FaucetArgs {
    /// Wallet to fund.
    wallet: Pubkey,
    /// SOL to airdrop.
    #[arg(long, default_value_t = 10)]
    sol: u64,
    /// Token base units to mint.
    #[arg(long, default_value_t = 0)]
    tokens: u64,
}

/// `gpunet faucet`
pub async fn run(g: &Global, a: FaucetArgs) -> Result<()> {
    let client = g.client();
    let authority = g.signer()?;
    let FaucetArgs {
        wallet,
        sol,
        tokens,
    } = a;
    if sol > 0 {
        client
            .airdrop(&wallet, sol.saturating_mul(1_000_000_000))
            .await
            .context("airdrop (only a localnet or devnet faucet answers)")?;
    }
    if tokens > 0 {
        let c = config(&client).await?;
        setup::mint_to_wallet(&client, &authority, &authority, &c.mint, &wallet, tokens)
            .await
            .map_err(|e| explain(e, "mint tokens (the signer must be the mint authority)"))?;
    }
    let v = json!({"wallet": wallet.to_string(), "sol": sol, "tokens": tokens});
    print(g.output, v, || {
        println!("funded {wallet}: {sol} SOL, {tokens} base units")
    });
    Ok(())
}
