//! The chain commands: `gpunet config|keeper|provider|lease …` and `gpunet faucet`, one file
//! per group. Keypairs and URLs work as in the Solana CLI (`--keypair`, `--url` with monikers);
//! tables by default, `--output json` for scripts; a spinner while a transaction confirms;
//! errors name the program's error, or say what is missing ("insufficient funds: need X, have
//! Y"). What the groups share is here: sending, error sentences, the config, GPU classes.

pub mod audit;
pub mod cluster;
pub mod config;
pub mod faucet;
pub mod keeper;
pub mod lease;
pub mod provider;

use anyhow::{Result, anyhow, bail};
use clap::ValueEnum;
use gpunet_sdk::gpunet::state::{Config, GpuClass};
use gpunet_sdk::{GpunetClient, SdkError};
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature};

use crate::output::{Output, Spinner};

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

/// Sends with a spinner; turns SDK errors into sentences.
async fn send(
    client: &GpunetClient,
    what: &str,
    ixs: &[Instruction],
    signer: &Keypair,
    output: Output,
) -> Result<Signature> {
    let sp = Spinner::start(output, format!("{what}: waiting for confirmation"));
    let res = client.send(ixs, signer, &[]).await;
    sp.stop();
    res.map_err(|e| explain(e, what))
}

/// A person-readable error.
pub(crate) fn explain(e: SdkError, what: &str) -> anyhow::Error {
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

/// `explain`, except that a missing account reads `missing`.
fn explain_missing(e: SdkError, what: &str, missing: String) -> anyhow::Error {
    match e {
        SdkError::NotFound { .. } => anyhow!(missing),
        other => explain(other, what),
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

/// The protocol config, or a sentence saying gpunet is not initialised.
async fn config(client: &GpunetClient) -> Result<Config> {
    client.config().await.map_err(|e| {
        explain_missing(
            e,
            "config",
            "gpunet is not initialised on this cluster (run `gpunet config init`)".into(),
        )
    })
}

/// `wallet`, or the signer's public key.
fn wallet_or_signer(g: &crate::Global, wallet: Option<Pubkey>) -> Result<Pubkey> {
    use solana_sdk::signature::Signer;
    Ok(match wallet {
        Some(w) => w,
        None => g.signer()?.pubkey(),
    })
}
