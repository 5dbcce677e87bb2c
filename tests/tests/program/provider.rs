//! Provider actions: register, update, stake, unstake_request, withdraw, close.

use anchor_lang::error::ErrorCode as AnchorError;
use gpunet::error::GpunetError;
use gpunet::instructions::ProviderUpdateArgs;
use gpunet::state::{GpuClass, ProviderStatus};
use gpunet_sdk::{ix, pda};
use gpunet_tests::*;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::{substitute, unsigned};

const STAKE: u64 = 4_000 * TOKEN; // 4 H100s × 1,000 tokens minimum

/// Rewrites a provider account in place (stands in for lease states set up elsewhere).
async fn poke_provider(
    f: &mut Fixture,
    authority: &Pubkey,
    edit: impl FnOnce(&mut gpunet::state::Provider),
) {
    f.rewrite(&pda::provider(authority), edit).await;
}

#[tokio::test]
async fn test_provider_register_ok() {
    let mut f = Fixture::new().await;
    let w = f.wallet(0).await;
    let mint = f.mint;
    let args = provider_args(4);
    f.send(
        &[ix::provider_register(&w.pubkey(), &mint, args.clone())],
        &[&w.keypair],
    )
    .await
    .unwrap();
    let p = f.provider(&w.pubkey()).await;
    assert_eq!(p.authority, w.pubkey());
    assert_eq!(p.status, ProviderStatus::Active);
    assert_eq!(&p.region[..7], b"eu-west");
    assert_eq!(p.region[7..], [0u8; 9]);
    assert_eq!(&p.zone[..1], b"a");
    assert_eq!(p.gpu, args.gpu);
    assert_eq!(p.endpoint, args.endpoint);
    assert_eq!(p.workers, args.workers);
    assert_eq!(p.staked, 0);
    let config = f.config().await;
    assert!(!p.can_take_leases(&config).unwrap(), "no stake yet");
    // The vault exists, empty, owned by the provider PDA.
    assert!(
        f.raw(&pda::provider_vault(&pda::provider(&w.pubkey())))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn test_provider_register_twice_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(2, 0, 0).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_register(&w.pubkey(), &mint, provider_args(8))],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::AlreadyInitialized);
    assert_eq!(f.provider(&w.pubkey()).await.gpu.count, 2);
}

#[tokio::test]
async fn test_provider_register_bad_arguments_fail() {
    let mut f = Fixture::new().await;
    let w = f.wallet(0).await;
    let mint = f.mint;
    let cases: Vec<(
        Box<dyn Fn(&mut gpunet::instructions::ProviderRegisterArgs)>,
        GpunetError,
    )> = vec![
        (Box::new(|a| a.gpu.count = 0), GpunetError::InvalidGpuCount),
        (
            Box::new(|a| a.gpu.count = 1025),
            GpunetError::InvalidGpuCount,
        ),
        (Box::new(|a| a.gpu.vram_gib = 0), GpunetError::InvalidVram),
        (
            Box::new(|a| a.gpu.price_per_gpu_second = 0),
            GpunetError::InvalidPrice,
        ),
        (
            Box::new(|a| a.region = String::new()),
            GpunetError::InvalidLocation,
        ),
        (
            Box::new(|a| a.zone = "a zone with spaces".into()),
            GpunetError::InvalidLocation,
        ),
        (
            Box::new(|a| a.region = "x".repeat(17)),
            GpunetError::InvalidLocation,
        ),
        (
            Box::new(|a| a.endpoint = "h".repeat(129)),
            GpunetError::InvalidEndpoint,
        ),
        (
            Box::new(|a| a.endpoint = String::new()),
            GpunetError::InvalidEndpoint,
        ),
        (
            Box::new(|a| a.workers = vec![]),
            GpunetError::InvalidWorkers,
        ),
        (
            Box::new(|a| a.workers = vec![a.workers[0], a.workers[0]]),
            GpunetError::InvalidWorkers,
        ),
        (
            Box::new(|a| a.workers = vec![Pubkey::default()]),
            GpunetError::InvalidWorkers,
        ),
        (
            Box::new(|a| a.workers = (0..17).map(|_| Keypair::new().pubkey()).collect()),
            GpunetError::InvalidWorkers,
        ),
    ];
    for (edit, expected) in cases {
        let mut args = provider_args(4);
        edit(&mut args);
        let res = f
            .send(
                &[ix::provider_register(&w.pubkey(), &mint, args)],
                &[&w.keypair],
            )
            .await;
        assert_gpunet_err(res, expected);
    }
    assert!(f.raw(&pda::provider(&w.pubkey())).await.is_none());
}

#[tokio::test]
async fn test_provider_update_ok() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, 0).await;
    let new_worker = Keypair::new().pubkey();
    let mut gpu = h100s(8);
    gpu.class = GpuClass::H200;
    gpu.price_per_gpu_second = 25;
    let args = ProviderUpdateArgs {
        region: Some("us-east".into()),
        zone: None,
        endpoint: Some("grpc://10.0.0.1:7000".into()),
        gpu: Some(gpu),
        workers: Some(vec![new_worker]),
    };
    f.send(&[ix::provider_update(&w.pubkey(), args)], &[&w.keypair])
        .await
        .unwrap();
    let p = f.provider(&w.pubkey()).await;
    assert_eq!(&p.region[..7], b"us-east");
    assert_eq!(&p.zone[..1], b"a");
    assert_eq!(p.gpu, gpu);
    assert_eq!(p.endpoint, "grpc://10.0.0.1:7000");
    assert_eq!(p.workers, vec![new_worker]);
}

#[tokio::test]
async fn test_provider_update_by_stranger_fails() {
    let mut f = Fixture::new().await;
    let victim = f.provider_wallet(4, 0, 0).await;
    let thief = f.wallet(0).await;
    let ix = substitute(
        ix::provider_update(
            &thief.pubkey(),
            ProviderUpdateArgs {
                workers: Some(vec![thief.pubkey()]),
                ..Default::default()
            },
        ),
        &pda::provider(&thief.pubkey()),
        &pda::provider(&victim.pubkey()),
    );
    assert_anchor_err(
        f.send(&[ix], &[&thief.keypair]).await,
        AnchorError::ConstraintSeeds,
    );
    assert_ne!(
        f.provider(&victim.pubkey()).await.workers,
        vec![thief.pubkey()]
    );
}

#[tokio::test]
async fn test_provider_update_below_leased_gpus_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    poke_provider(&mut f, &w.pubkey(), |p| {
        p.active_leases = 1;
        p.gpus_leased = 3;
        p.locked = 3_000 * TOKEN;
    })
    .await;
    let res = f
        .send(
            &[ix::provider_update(
                &w.pubkey(),
                ProviderUpdateArgs {
                    gpu: Some(h100s(2)),
                    ..Default::default()
                },
            )],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::GpusInUse);

    let mut other_class = h100s(4);
    other_class.class = GpuClass::A100;
    let res = f
        .send(
            &[ix::provider_update(
                &w.pubkey(),
                ProviderUpdateArgs {
                    gpu: Some(other_class),
                    ..Default::default()
                },
            )],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ClassChangeWithLeases);
}

#[tokio::test]
async fn test_provider_stake_ok() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, STAKE).await;
    let mint = f.mint;
    f.send(
        &[ix::provider_stake(&w.pubkey(), &w.token, &mint, STAKE)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    let p = f.provider(&w.pubkey()).await;
    assert_eq!(p.staked, STAKE);
    assert_eq!(
        f.balance(&pda::provider_vault(&pda::provider(&w.pubkey())))
            .await,
        STAKE
    );
    assert_eq!(f.balance(&w.token).await, 0);
    let config = f.config().await;
    assert!(p.can_take_leases(&config).unwrap());
}

#[tokio::test]
async fn test_provider_below_minimum_cannot_take_leases() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE - 1, 0).await;
    let p = f.provider(&w.pubkey()).await;
    let config = f.config().await;
    assert!(!p.can_take_leases(&config).unwrap());
}

#[tokio::test]
async fn test_provider_stake_zero_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, STAKE).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_stake(&w.pubkey(), &w.token, &mint, 0)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ZeroAmount);
}

#[tokio::test]
async fn test_provider_stake_overflow_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 1_000, 0).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_stake(&w.pubkey(), &w.token, &mint, u64::MAX)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::MathOverflow);
    assert_eq!(f.provider(&w.pubkey()).await.staked, 1_000);
}

#[tokio::test]
async fn test_provider_stake_into_another_providers_vault_fails() {
    let mut f = Fixture::new().await;
    let a = f.provider_wallet(4, 0, STAKE).await;
    let b = f.provider_wallet(4, 0, 0).await;
    let mint = f.mint;
    let ix = substitute(
        ix::provider_stake(&a.pubkey(), &a.token, &mint, STAKE),
        &pda::provider_vault(&pda::provider(&a.pubkey())),
        &pda::provider_vault(&pda::provider(&b.pubkey())),
    );
    assert_anchor_err(
        f.send(&[ix], &[&a.keypair]).await,
        AnchorError::ConstraintSeeds,
    );
    assert_eq!(f.balance(&a.token).await, STAKE);
}

#[tokio::test]
async fn test_provider_stake_with_wrong_owner_account_in_provider_slot_fails() {
    // An account owned by another program (a token account) where the provider should be.
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, STAKE).await;
    let mint = f.mint;
    let ix = substitute(
        ix::provider_stake(&w.pubkey(), &w.token, &mint, STAKE),
        &pda::provider(&w.pubkey()),
        &w.token.clone(),
    );
    let res = f.send(&[ix], &[&w.keypair]).await;
    assert_anchor_err(res, AnchorError::AccountOwnedByWrongProgram);
}

#[tokio::test]
async fn test_provider_stake_without_signature_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, STAKE).await;
    let mint = f.mint;
    let ix = unsigned(
        ix::provider_stake(&w.pubkey(), &w.token, &mint, STAKE),
        &w.pubkey(),
    );
    assert_anchor_err(f.send(&[ix], &[]).await, AnchorError::AccountNotSigner);
}

#[tokio::test]
async fn test_provider_stake_paused_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, STAKE).await;
    f.set_paused(true).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_stake(&w.pubkey(), &w.token, &mint, STAKE)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ProtocolPaused);
    assert_eq!(f.balance(&w.token).await, STAKE);
}

#[tokio::test]
async fn test_unstake_withdraw_ok_walks_the_state_machine() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 1_000)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    let now = f.clock().await.unix_timestamp;
    let p = f.provider(&w.pubkey()).await;
    assert_eq!(p.status, ProviderStatus::Unbonding);
    assert_eq!(p.staked, STAKE - 1_000);
    assert_eq!(p.unbonding, 1_000);
    assert_eq!(p.unbonding_ends_at, now + default_params().unbonding_period);
    let config = f.config().await;
    assert!(
        !p.can_take_leases(&config).unwrap(),
        "unbonding providers take no leases"
    );

    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    f.send(
        &[ix::provider_withdraw(&w.pubkey(), &w.token, &mint)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    let p = f.provider(&w.pubkey()).await;
    assert_eq!(p.status, ProviderStatus::Active);
    assert_eq!(p.unbonding, 0);
    assert_eq!(p.unbonding_ends_at, 0);
    assert_eq!(f.balance(&w.token).await, 1_000);
    assert_eq!(
        f.balance(&pda::provider_vault(&pda::provider(&w.pubkey())))
            .await,
        STAKE - 1_000
    );
}

#[tokio::test]
async fn test_unstake_more_than_staked_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 1_000, 0).await;
    let res = f
        .send(
            &[ix::provider_unstake_request(&w.pubkey(), 1_001)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::InsufficientStake);
    let res = f
        .send(
            &[ix::provider_unstake_request(&w.pubkey(), 0)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ZeroAmount);
}

#[tokio::test]
async fn test_unstake_locked_stake_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    poke_provider(&mut f, &w.pubkey(), |p| {
        p.active_leases = 1;
        p.gpus_leased = 2;
        p.locked = 3_000 * TOKEN;
    })
    .await;
    let res = f
        .send(
            &[ix::provider_unstake_request(&w.pubkey(), 1_000 * TOKEN + 1)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::StakeLocked);
    // The free part can go.
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 1_000 * TOKEN)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    assert_eq!(f.provider(&w.pubkey()).await.staked, 3_000 * TOKEN);
}

#[tokio::test]
async fn test_withdraw_before_unbonding_ends_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 500)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    f.warp(default_params().unbonding_period - 1).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_withdraw(&w.pubkey(), &w.token, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::UnbondingNotFinished);
    assert_eq!(f.balance(&w.token).await, 0);
}

#[tokio::test]
async fn test_second_unstake_restarts_the_period() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    let period = default_params().unbonding_period;
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 500)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    f.warp(period - 100).await;
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 500)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    f.warp(100).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_withdraw(&w.pubkey(), &w.token, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::UnbondingNotFinished);
    f.warp(period).await;
    f.send(
        &[ix::provider_withdraw(&w.pubkey(), &w.token, &mint)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    assert_eq!(f.balance(&w.token).await, 1_000);
}

#[tokio::test]
async fn test_withdraw_with_nothing_unbonding_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_withdraw(&w.pubkey(), &w.token, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::NothingToWithdraw);
}

#[tokio::test]
async fn test_withdraw_to_account_of_other_mint_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, STAKE, 0).await;
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 500)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    f.warp(default_params().unbonding_period).await;
    let other_mint = f.create_mint(&w.pubkey()).await;
    let other = f.token_account(&w.pubkey(), &other_mint).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_withdraw(&w.pubkey(), &other, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::WrongMint);
}

#[tokio::test]
async fn test_provider_close_with_stake_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 10, 0).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_close(&w.pubkey(), &w.token, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ProviderNotEmpty);

    // Unbonding stake still counts.
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), 10)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    let res = f
        .send(
            &[ix::provider_close(&w.pubkey(), &w.token, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ProviderNotEmpty);
}

#[tokio::test]
async fn test_provider_close_ok_returns_rent_and_sweeps_gifts() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, 0).await;
    let provider = pda::provider(&w.pubkey());
    let vault = pda::provider_vault(&provider);
    f.mint_to(&vault, 5).await; // a gift must neither freeze the close nor vanish
    let rent = f.lamports(&provider).await + f.lamports(&vault).await;
    let before = f.lamports(&w.pubkey()).await;
    let mint = f.mint;
    f.send(
        &[ix::provider_close(&w.pubkey(), &w.token, &mint)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    assert!(f.raw(&provider).await.is_none());
    assert!(f.raw(&vault).await.is_none());
    assert_eq!(f.balance(&w.token).await, 5);
    assert_eq!(f.lamports(&w.pubkey()).await, before + rent);
}

#[tokio::test]
async fn test_provider_close_with_active_lease_fails() {
    let mut f = Fixture::new().await;
    let w = f.provider_wallet(4, 0, 0).await;
    poke_provider(&mut f, &w.pubkey(), |p| p.active_leases = 1).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::provider_close(&w.pubkey(), &w.token, &mint)],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ProviderNotEmpty);
}

#[tokio::test]
async fn test_tokens_are_conserved_through_a_provider_life() {
    let mut f = Fixture::new().await;
    let supply = f.supply().await;
    let w = f.provider_wallet(4, STAKE, 77).await;
    let supply_after = f.supply().await;
    let vault = pda::provider_vault(&pda::provider(&w.pubkey()));
    assert_eq!(
        f.balance(&w.token).await + f.balance(&vault).await,
        supply_after - supply
    );
    f.send(
        &[ix::provider_unstake_request(&w.pubkey(), STAKE)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    f.send(
        &[ix::provider_withdraw(&w.pubkey(), &w.token, &mint)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    f.send(
        &[ix::provider_close(&w.pubkey(), &w.token, &mint)],
        &[&w.keypair],
    )
    .await
    .unwrap();
    assert_eq!(f.balance(&w.token).await, STAKE + 77);
    assert_eq!(f.supply().await, supply_after);
}

#[tokio::test]
async fn test_provider_register_after_someone_prefunds_the_pda_ok() {
    // Griefing attempt: lamports sent to the provider PDA before it exists must not block
    // registration (Anchor's `init` funds, allocates and assigns a prefunded account).
    let mut f = Fixture::new().await;
    let w = f.wallet(0).await;
    f.airdrop(&pda::provider(&w.pubkey()), 1_000_000).await;
    let mint = f.mint;
    f.send(
        &[ix::provider_register(&w.pubkey(), &mint, provider_args(4))],
        &[&w.keypair],
    )
    .await
    .unwrap();
    assert_eq!(f.provider(&w.pubkey()).await.gpu.count, 4);
}
