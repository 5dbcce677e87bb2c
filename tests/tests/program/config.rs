//! Admin actions: config_init, config_update, config_accept_admin.

use anchor_lang::error::ErrorCode as AnchorError;
use gpunet::error::GpunetError;
use gpunet::instructions::ConfigUpdateArgs;
use gpunet_sdk::{ix, pda};
use gpunet_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

use crate::unsigned;

#[tokio::test]
async fn test_config_init_ok() {
    let mut f = Fixture::new().await;
    let c = f.config().await;
    assert_eq!(c.admin, f.admin.pubkey());
    assert_eq!(c.mint, f.mint);
    assert_eq!(c.mint_decimals, DECIMALS);
    assert_eq!(c.treasury, f.treasury);
    assert_eq!(c.params, default_params());
    assert_eq!(c.active_keepers, 0);
    assert!(!c.paused);
    assert_eq!(c.pending_admin, Pubkey::default());
}

#[tokio::test]
async fn test_config_init_twice_fails() {
    let mut f = Fixture::new().await;
    let attacker = f.wallet(0).await;
    let ix = ix::config_init(
        &attacker.pubkey(),
        &f.mint,
        &f.treasury,
        None,
        default_params(),
    );
    let res = f.send(&[ix], &[&attacker.keypair]).await;
    assert_gpunet_err(res, GpunetError::AlreadyInitialized);
    assert_eq!(f.config().await.admin, f.admin.pubkey());
}

async fn init_with(
    params: gpunet::state::ConfigParams,
) -> (Fixture, Result<(), solana_program_test::BanksClientError>) {
    let mut f = Fixture::bare().await;
    let admin = f.admin.insecure_clone();
    let ix = ix::config_init(&admin.pubkey(), &f.mint, &f.treasury, None, params);
    let res = f.send(&[ix], &[&admin]).await;
    (f, res)
}

#[tokio::test]
async fn test_config_init_fees_over_10000_bps_fails() {
    let mut p = default_params();
    p.protocol_fee_bps = 9_000;
    p.keeper_fee_bps = 1_001;
    let (mut f, res) = init_with(p).await;
    assert_gpunet_err(res, GpunetError::FeesTooHigh);
    assert!(f.raw(&pda::config()).await.is_none());
}

#[tokio::test]
async fn test_config_init_bad_quorum_fails() {
    let mut p = default_params();
    p.slash_quorum = 0;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidSlashQuorum);

    let mut p = default_params();
    p.max_keepers = 3;
    p.slash_quorum = 4;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidSlashQuorum);
}

#[tokio::test]
async fn test_config_init_zero_interval_fails() {
    let mut p = default_params();
    p.checkpoint_interval = 0;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidPeriod);

    let mut p = default_params();
    p.unbonding_period = -1;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidPeriod);
}

#[tokio::test]
async fn test_config_init_slash_fraction_over_10000_fails() {
    let mut p = default_params();
    p.slash_fraction_bps = 10_001;
    assert_gpunet_err(init_with(p).await.1, GpunetError::BpsOutOfRange);
}

#[tokio::test]
async fn test_config_init_treasury_of_other_mint_fails() {
    let mut f = Fixture::bare().await;
    let admin = f.admin.insecure_clone();
    let other_mint = f.create_mint(&admin.pubkey()).await;
    let bad_treasury = f.token_account(&admin.pubkey(), &other_mint).await;
    let ix = ix::config_init(
        &admin.pubkey(),
        &f.mint,
        &bad_treasury,
        None,
        default_params(),
    );
    assert_gpunet_err(f.send(&[ix], &[&admin]).await, GpunetError::WrongMint);
}

#[tokio::test]
async fn test_config_init_without_admin_signature_fails() {
    let mut f = Fixture::bare().await;
    let admin = f.admin.pubkey();
    let ix = unsigned(
        ix::config_init(&admin, &f.mint, &f.treasury, None, default_params()),
        &admin,
    );
    assert_anchor_err(f.send(&[ix], &[]).await, AnchorError::AccountNotSigner);
}

#[tokio::test]
async fn test_config_update_ok() {
    let mut f = Fixture::new().await;
    let mut p = default_params();
    p.protocol_fee_bps = 100;
    p.keeper_bond = 42;
    f.update_config(ConfigUpdateArgs {
        params: Some(p.clone()),
        paused: Some(true),
        pending_admin: None,
    })
    .await
    .unwrap();
    let c = f.config().await;
    assert_eq!(c.params, p);
    assert!(c.paused);
}

#[tokio::test]
async fn test_config_update_by_stranger_fails() {
    let mut f = Fixture::new().await;
    let stranger = f.wallet(0).await;
    let ix = ix::config_update(
        &stranger.pubkey(),
        None,
        ConfigUpdateArgs {
            paused: Some(true),
            ..Default::default()
        },
    );
    assert_gpunet_err(
        f.send(&[ix], &[&stranger.keypair]).await,
        GpunetError::NotAdmin,
    );
    assert!(!f.config().await.paused);
}

#[tokio::test]
async fn test_config_update_without_signature_fails() {
    let mut f = Fixture::new().await;
    let admin = f.admin.pubkey();
    let ix = unsigned(
        ix::config_update(
            &admin,
            None,
            ConfigUpdateArgs {
                paused: Some(true),
                ..Default::default()
            },
        ),
        &admin,
    );
    assert_anchor_err(f.send(&[ix], &[]).await, AnchorError::AccountNotSigner);
}

#[tokio::test]
async fn test_config_update_nonsense_params_fail() {
    let mut f = Fixture::new().await;
    let mut p = default_params();
    p.keeper_fee_bps = 10_000;
    p.protocol_fee_bps = 1;
    let res = f
        .update_config(ConfigUpdateArgs {
            params: Some(p),
            ..Default::default()
        })
        .await;
    assert_gpunet_err(res, GpunetError::FeesTooHigh);

    let mut p = default_params();
    p.keeper_bond = 0;
    let res = f
        .update_config(ConfigUpdateArgs {
            params: Some(p),
            ..Default::default()
        })
        .await;
    assert_gpunet_err(res, GpunetError::InvalidKeeperBond);
    assert_eq!(f.config().await.params, default_params());
}

#[tokio::test]
async fn test_config_update_max_keepers_below_active_fails() {
    let mut f = Fixture::new().await;
    f.keeper_wallet().await;
    f.keeper_wallet().await;
    f.keeper_wallet().await;
    let mut p = default_params();
    p.max_keepers = 2;
    p.slash_quorum = 2;
    let res = f
        .update_config(ConfigUpdateArgs {
            params: Some(p),
            ..Default::default()
        })
        .await;
    assert_gpunet_err(res, GpunetError::InvalidMaxKeepers);
}

#[tokio::test]
async fn test_config_update_treasury_of_other_mint_fails() {
    let mut f = Fixture::new().await;
    let admin = f.admin.insecure_clone();
    let other_mint = f.create_mint(&admin.pubkey()).await;
    let bad = f.token_account(&admin.pubkey(), &other_mint).await;
    let ix = ix::config_update(&admin.pubkey(), Some(bad), ConfigUpdateArgs::default());
    assert_gpunet_err(f.send(&[ix], &[&admin]).await, GpunetError::WrongMint);

    let mint = f.mint;
    let good = f.token_account(&admin.pubkey(), &mint).await;
    let ix = ix::config_update(&admin.pubkey(), Some(good), ConfigUpdateArgs::default());
    f.send(&[ix], &[&admin]).await.unwrap();
    assert_eq!(f.config().await.treasury, good);
}

#[tokio::test]
async fn test_admin_handover_ok_and_old_admin_loses_power() {
    let mut f = Fixture::new().await;
    let new_admin = f.wallet(0).await;
    f.update_config(ConfigUpdateArgs {
        pending_admin: Some(new_admin.pubkey()),
        ..Default::default()
    })
    .await
    .unwrap();
    // Proposing does not hand over yet.
    assert_eq!(f.config().await.admin, f.admin.pubkey());

    let ix = ix::config_accept_admin(&new_admin.pubkey());
    f.send(&[ix], &[&new_admin.keypair]).await.unwrap();
    let c = f.config().await;
    assert_eq!(c.admin, new_admin.pubkey());
    assert_eq!(c.pending_admin, Pubkey::default());

    let res = f
        .update_config(ConfigUpdateArgs {
            paused: Some(true),
            ..Default::default()
        })
        .await;
    assert_gpunet_err(res, GpunetError::NotAdmin);
}

#[tokio::test]
async fn test_admin_accept_by_wrong_key_fails() {
    let mut f = Fixture::new().await;
    let new_admin = f.wallet(0).await;
    let thief = f.wallet(0).await;

    let ix = ix::config_accept_admin(&thief.pubkey());
    assert_gpunet_err(
        f.send(&[ix], &[&thief.keypair]).await,
        GpunetError::NoPendingAdmin,
    );

    f.update_config(ConfigUpdateArgs {
        pending_admin: Some(new_admin.pubkey()),
        ..Default::default()
    })
    .await
    .unwrap();
    let ix = ix::config_accept_admin(&thief.pubkey());
    assert_gpunet_err(
        f.send(&[ix], &[&thief.keypair]).await,
        GpunetError::NotPendingAdmin,
    );
    assert_eq!(f.config().await.admin, f.admin.pubkey());
}

#[tokio::test]
async fn test_config_substituted_by_lookalike_fails() {
    // A config-shaped account that is not the PDA: here, a token account owned by the token
    // program in the config slot.
    let mut f = Fixture::new().await;
    let admin = f.admin.insecure_clone();
    let ix = crate::substitute(
        ix::config_update(&admin.pubkey(), None, ConfigUpdateArgs::default()),
        &pda::config(),
        &f.treasury.clone(),
    );
    assert_anchor_err(
        f.send(&[ix], &[&admin]).await,
        AnchorError::AccountOwnedByWrongProgram,
    );
}
