//! Initialising a cluster (the `migrations/` step): parameters to start from, and for a
//! localnet a fresh mint for stakes and payments.

use gpunet::state::{ConfigParams, GPU_CLASS_COUNT, GpuClass};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};

use crate::client::{GpunetClient, SdkError};
use crate::{ix, token};

/// Starting parameters for a cluster whose mint has `decimals` decimals: 5% protocol fee, 2%
/// keeper fee, 1,000 tokens of stake per datacenter GPU (100 for others), a 5,000-token keeper
/// bond, 14 days of unbonding, checkpoints every 5 minutes, one hour of grace, committees of 3
/// keepers (at most 64 active), half of the locked stake slashed by 2 of the committee (the user
/// compensated up to what it paid, 10% and the rest to the treasury), half a keeper's bond for a
/// false checkpoint, 7 days of jail, and parameter changes 2 days after they are proposed.
pub fn default_params(decimals: u8) -> ConfigParams {
    let token = 10u64.pow(u32::from(decimals.min(12)));
    let mut min_stake_per_gpu = [0u64; GPU_CLASS_COUNT];
    for (i, class) in GpuClass::ALL.iter().enumerate() {
        min_stake_per_gpu[i] = match class {
            GpuClass::H200 | GpuClass::H100 | GpuClass::A100 => 1_000 * token,
            _ => 100 * token,
        };
    }
    ConfigParams {
        protocol_fee_bps: 500,
        keeper_fee_bps: 200,
        min_stake_per_gpu,
        keeper_bond: 5_000 * token,
        unbonding_period: 14 * 24 * 3_600,
        checkpoint_interval: 300,
        grace_period: 3_600,
        slash_fraction_bps: 5_000,
        slash_treasury_bps: 1_000,
        slash_quorum: 2,
        max_keepers: 64,
        committee_size: 3,
        slash_compensation_bps: 10_000,
        keeper_slash_fraction_bps: 5_000,
        jail_period: 7 * 24 * 3_600,
        param_change_delay: 2 * 24 * 3_600,
    }
}

/// Creates a mint with `authority` as mint authority; returns its address.
pub async fn create_mint(
    client: &GpunetClient,
    payer: &Keypair,
    authority: &Pubkey,
    decimals: u8,
) -> Result<Pubkey, SdkError> {
    let mint = Keypair::new();
    let rent = client
        .rpc()
        .get_minimum_balance_for_rent_exemption(token::MINT_LEN as usize)
        .await?;
    let ixs = token::create_mint(&payer.pubkey(), &mint.pubkey(), authority, decimals, rent)
        .map_err(|e| SdkError::Decode {
            kind: "mint instruction",
            address: mint.pubkey(),
            reason: e.to_string(),
        })?;
    client.send(&ixs, payer, &[&mint]).await?;
    Ok(mint.pubkey())
}

/// Mints `amount` to `wallet`'s associated token account (created if needed).
pub async fn mint_to_wallet(
    client: &GpunetClient,
    payer: &Keypair,
    mint_authority: &Keypair,
    mint: &Pubkey,
    wallet: &Pubkey,
    amount: u64,
) -> Result<Signature, SdkError> {
    let to = token::ata(wallet, mint);
    let mint_ix = token::mint_to(mint, &to, &mint_authority.pubkey(), amount).map_err(|e| {
        SdkError::Decode {
            kind: "mint_to instruction",
            address: *mint,
            reason: e.to_string(),
        }
    })?;
    client
        .send(
            &[token::create_ata(&payer.pubkey(), wallet, mint), mint_ix],
            payer,
            &[mint_authority],
        )
        .await
}

/// Initialises the config and its treasury vault (a PDA of the program). Returns the treasury
/// address. A mint with a freeze authority is refused unless `allow_freeze_authority`.
pub async fn init_config(
    client: &GpunetClient,
    admin: &Keypair,
    mint: &Pubkey,
    params: ConfigParams,
    allow_freeze_authority: bool,
) -> Result<Pubkey, SdkError> {
    client
        .send(
            &[ix::config_init(
                &admin.pubkey(),
                mint,
                None,
                params,
                allow_freeze_authority,
            )],
            admin,
            &[],
        )
        .await?;
    Ok(crate::pda::treasury())
}
