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
    let ix = ix::config_init(&attacker.pubkey(), &f.mint, None, default_params(), false);
    let res = f.send(&[ix], &[&attacker.keypair]).await;
    assert_gpunet_err(res, GpunetError::AlreadyInitialized);
    assert_eq!(f.config().await.admin, f.admin.pubkey());
}

async fn init_with(
    params: gpunet::state::ConfigParams,
) -> (Fixture, Result<(), solana_program_test::BanksClientError>) {
    let mut f = Fixture::bare().await;
    let admin = f.admin.insecure_clone();
    let ix = ix::config_init(&admin.pubkey(), &f.mint, None, params, false);
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
async fn test_config_init_with_a_freezable_mint_needs_consent() {
    let mut f = Fixture::bare().await;
    let admin = f.admin.insecure_clone();
    // A mint whose freeze authority could freeze every vault and stop every payout.
    let mint = solana_sdk::signature::Keypair::new();
    let rent = f.rent(82).await;
    let payer = f.ctx.payer.pubkey();
    let ixs = [
        solana_system_interface::instruction::create_account(
            &payer,
            &mint.pubkey(),
            rent,
            82,
            &spl_token_interface::ID,
        ),
        spl_token_interface::instruction::initialize_mint2(
            &spl_token_interface::ID,
            &mint.pubkey(),
            &admin.pubkey(),
            Some(&admin.pubkey()),
            DECIMALS,
        )
        .unwrap(),
    ];
    f.send(&ixs, &[&mint]).await.unwrap();
    let ix = ix::config_init(
        &admin.pubkey(),
        &mint.pubkey(),
        None,
        default_params(),
        false,
    );
    assert_gpunet_err(
        f.send(&[ix], &[&admin]).await,
        GpunetError::MintHasFreezeAuthority,
    );
    let ix = ix::config_init(
        &admin.pubkey(),
        &mint.pubkey(),
        None,
        default_params(),
        true,
    );
    f.send(&[ix], &[&admin]).await.unwrap();
    assert_eq!(f.config().await.mint, mint.pubkey());
}

#[tokio::test]
async fn test_config_init_bounds_fees_bond_and_stake() {
    let mut p = default_params();
    p.protocol_fee_bps = 2_001;
    assert_gpunet_err(init_with(p).await.1, GpunetError::FeesTooHigh);
    let mut p = default_params();
    p.keeper_bond = TOKEN - 1;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidKeeperBond);
    let mut p = default_params();
    p.min_stake_per_gpu[3] = 1;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidMinStake);
    let mut p = default_params();
    p.checkpoint_interval = 59;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidPeriod);
    let mut p = default_params();
    p.unbonding_period = p.checkpoint_interval + p.grace_period - 1;
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidPeriod);
    let mut p = default_params();
    p.committee_size = p.slash_quorum; // the accused of a keeper slash could not be outvoted
    assert_gpunet_err(init_with(p).await.1, GpunetError::InvalidCommitteeSize);
    let mut p = default_params();
    p.slash_compensation_bps = 10_001;
    assert_gpunet_err(init_with(p).await.1, GpunetError::BpsOutOfRange);
}

#[tokio::test]
async fn test_config_init_without_admin_signature_fails() {
    let mut f = Fixture::bare().await;
    let admin = f.admin.pubkey();
    let ix = unsigned(
        ix::config_init(&admin, &f.mint, None, default_params(), false),
        &admin,
    );
    assert_anchor_err(f.send(&[ix], &[]).await, AnchorError::AccountNotSigner);
}

#[tokio::test]
async fn test_config_update_ok() {
    let mut f = Fixture::new().await;
    let mut p = default_params();
    p.protocol_fee_bps = 100;
    p.keeper_bond = 42 * TOKEN;
    f.update_config(ConfigUpdateArgs {
        params: Some(p.clone()),
        paused: Some(true),
        ..Default::default()
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
async fn test_treasury_is_a_program_vault_only_the_admin_withdraws_from() {
    let mut f = Fixture::new().await;
    let treasury = f.treasury;
    assert_eq!(treasury, pda::treasury());
    f.mint_to(&treasury, 500).await;
    let admin = f.admin.insecure_clone();
    let mint = f.mint;
    let dest = f.token_account(&admin.pubkey(), &mint).await;
    let thief = f.wallet(0).await;
    let ix = ix::treasury_withdraw(&thief.pubkey(), &thief.token, &mint, 100);
    assert_gpunet_err(
        f.send(&[ix], &[&thief.keypair]).await,
        GpunetError::NotAdmin,
    );
    let ix = ix::treasury_withdraw(&admin.pubkey(), &dest, &mint, 501);
    assert_gpunet_err(f.send(&[ix], &[&admin]).await, GpunetError::TreasuryTooLow);
    // Works while paused; the vault stays (nobody can close it), so payouts never stop.
    f.set_paused(true).await;
    let ix = ix::treasury_withdraw(&admin.pubkey(), &dest, &mint, 500);
    f.send(&[ix], &[&admin]).await.unwrap();
    assert_eq!(f.balance(&dest).await, 500);
    assert!(f.raw(&treasury).await.is_some());
    // The token account's owner is the config PDA: no wallet can close it.
    let close = spl_token_interface::instruction::close_account(
        &spl_token_interface::ID,
        &treasury,
        &admin.pubkey(),
        &admin.pubkey(),
        &[],
    )
    .unwrap();
    assert!(f.send(&[close], &[&admin]).await.is_err());
    assert!(f.raw(&treasury).await.is_some());
}

#[tokio::test]
async fn test_config_param_change_waits_for_its_delay() {
    let mut p = default_params();
    p.param_change_delay = 2 * 24 * 3600;
    let mut f = Fixture::with_params(p.clone()).await;
    let mut next = p.clone();
    next.protocol_fee_bps = 1_500;
    f.update_config(ConfigUpdateArgs {
        params: Some(next.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = f.config().await;
    assert_eq!(c.params, p, "not current yet");
    assert_eq!(c.pending_params, next);
    let ix = ix::config_apply();
    assert_gpunet_err(f.send(&[ix.clone()], &[]).await, GpunetError::ParamsNotDue);
    f.warp(p.param_change_delay).await;
    // Anyone applies it once due.
    f.send(&[ix.clone()], &[]).await.unwrap();
    let c = f.config().await;
    assert_eq!(c.params, next);
    assert_eq!(c.pending_params_at, 0);
    assert_gpunet_err(f.send(&[ix], &[]).await, GpunetError::NoParamsPending);
    // A proposal can be withdrawn before it is due.
    f.update_config(ConfigUpdateArgs {
        params: Some(p.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    f.update_config(ConfigUpdateArgs {
        cancel_pending_params: true,
        ..Default::default()
    })
    .await
    .unwrap();
    f.warp(p.param_change_delay).await;
    assert_gpunet_err(
        f.send(&[ix::config_apply()], &[]).await,
        GpunetError::NoParamsPending,
    );
    assert_eq!(f.config().await.params, next);
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
        ix::config_update(&admin.pubkey(), ConfigUpdateArgs::default()),
        &pda::config(),
        &f.treasury.clone(),
    );
    assert_anchor_err(
        f.send(&[ix], &[&admin]).await,
        AnchorError::AccountOwnedByWrongProgram,
    );
}
