//! Keeper actions: keeper_register, keeper_deregister, keeper_close.

use anchor_lang::error::ErrorCode as AnchorError;
use gpunet::error::GpunetError;
use gpunet::state::KeeperStatus;
use gpunet_sdk::{ix, pda};
use gpunet_tests::*;

use crate::{substitute, unsigned};

#[tokio::test]
async fn test_keeper_register_ok() {
    let mut f = Fixture::new().await;
    let bond = default_params().keeper_bond;
    let w = f.wallet(bond + 7).await;
    let mint = f.mint;
    f.send(
        &[ix::keeper_register(
            &w.pubkey(),
            &w.token,
            &mint,
            KEEPER_ENDPOINT,
        )],
        &[&w.keypair],
    )
    .await
    .unwrap();

    let k = f.keeper(&w.pubkey()).await;
    assert_eq!(k.authority, w.pubkey());
    assert_eq!(k.status, KeeperStatus::Active);
    assert_eq!(k.bond, bond);
    assert_eq!(
        f.balance(&pda::keeper_vault(&pda::keeper(&w.pubkey())))
            .await,
        bond
    );
    assert_eq!(f.balance(&w.token).await, 7);
    assert_eq!(f.config().await.active_keepers, 1);
}

#[tokio::test]
async fn test_keeper_register_twice_fails() {
    let mut f = Fixture::new().await;
    let bond = default_params().keeper_bond;
    let w = f.wallet(2 * bond).await;
    let mint = f.mint;
    f.send(
        &[ix::keeper_register(
            &w.pubkey(),
            &w.token,
            &mint,
            KEEPER_ENDPOINT,
        )],
        &[&w.keypair],
    )
    .await
    .unwrap();
    let res = f
        .send(
            &[ix::keeper_register(
                &w.pubkey(),
                &w.token,
                &mint,
                KEEPER_ENDPOINT,
            )],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::AlreadyInitialized);
    assert_eq!(f.balance(&w.token).await, bond);
    assert_eq!(f.config().await.active_keepers, 1);
}

#[tokio::test]
async fn test_keeper_register_with_token_account_of_other_mint_fails() {
    let mut f = Fixture::new().await;
    let w = f.wallet(0).await;
    let other_mint = f.create_mint(&w.pubkey()).await;
    let other = f.token_account(&w.pubkey(), &other_mint).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_register(
                &w.pubkey(),
                &other,
                &mint,
                KEEPER_ENDPOINT,
            )],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::WrongMint);
}

#[tokio::test]
async fn test_keeper_register_with_other_mint_account_fails() {
    let mut f = Fixture::new().await;
    let bond = default_params().keeper_bond;
    let w = f.wallet(bond).await;
    let other_mint = f.create_mint(&w.pubkey()).await;
    let mint = f.mint;
    let ix = substitute(
        ix::keeper_register(&w.pubkey(), &w.token, &mint, KEEPER_ENDPOINT),
        &mint,
        &other_mint,
    );
    assert_gpunet_err(f.send(&[ix], &[&w.keypair]).await, GpunetError::WrongMint);
}

#[tokio::test]
async fn test_keeper_register_paying_from_someone_elses_account_fails() {
    let mut f = Fixture::new().await;
    let bond = default_params().keeper_bond;
    let victim = f.wallet(bond).await;
    let thief = f.wallet(0).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_register(
                &thief.pubkey(),
                &victim.token,
                &mint,
                KEEPER_ENDPOINT,
            )],
            &[&thief.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::WrongTokenOwner);
    assert_eq!(f.balance(&victim.token).await, bond);
}

#[tokio::test]
async fn test_keeper_register_without_funds_fails_and_changes_nothing() {
    let mut f = Fixture::new().await;
    let w = f.wallet(10).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_register(
                &w.pubkey(),
                &w.token,
                &mint,
                KEEPER_ENDPOINT,
            )],
            &[&w.keypair],
        )
        .await;
    // SPL Token's TokenError::InsufficientFunds.
    assert_eq!(res.as_ref().err().and_then(custom_code), Some(1), "{res:?}");
    assert_eq!(f.balance(&w.token).await, 10);
    assert!(f.raw(&pda::keeper(&w.pubkey())).await.is_none());
    assert_eq!(f.config().await.active_keepers, 0);
}

#[tokio::test]
async fn test_keeper_register_paused_fails() {
    let mut f = Fixture::new().await;
    f.set_paused(true).await;
    let bond = default_params().keeper_bond;
    let w = f.wallet(bond).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_register(
                &w.pubkey(),
                &w.token,
                &mint,
                KEEPER_ENDPOINT,
            )],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::ProtocolPaused);
}

#[tokio::test]
async fn test_keeper_register_when_set_full_fails() {
    let mut p = default_params();
    p.max_keepers = 2;
    let mut f = Fixture::with_params(p).await;
    f.keeper_wallet().await;
    f.keeper_wallet().await;
    let bond = default_params().keeper_bond;
    let w = f.wallet(bond).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_register(
                &w.pubkey(),
                &w.token,
                &mint,
                KEEPER_ENDPOINT,
            )],
            &[&w.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::KeeperSetFull);
}

#[tokio::test]
async fn test_keeper_register_without_signature_fails() {
    let mut f = Fixture::new().await;
    let bond = default_params().keeper_bond;
    let w = f.wallet(bond).await;
    let mint = f.mint;
    let ix = unsigned(
        ix::keeper_register(&w.pubkey(), &w.token, &mint, KEEPER_ENDPOINT),
        &w.pubkey(),
    );
    assert_anchor_err(f.send(&[ix], &[]).await, AnchorError::AccountNotSigner);
}

#[tokio::test]
async fn test_keeper_deregister_and_close_ok() {
    let mut f = Fixture::new().await;
    let k = f.keeper_wallet().await;
    let bond = default_params().keeper_bond;
    f.send(&[ix::keeper_deregister(&k.pubkey(), None)], &[&k.keypair])
        .await
        .unwrap();
    let now = f.clock().await.unix_timestamp;
    let acct = f.keeper(&k.pubkey()).await;
    assert_eq!(acct.status, KeeperStatus::Unbonding);
    assert_eq!(
        acct.unbonding_ends_at,
        now + default_params().unbonding_period
    );
    assert_eq!(f.config().await.active_keepers, 0);

    let keeper = pda::keeper(&k.pubkey());
    let vault = pda::keeper_vault(&keeper);
    let rent = f.lamports(&keeper).await + f.lamports(&vault).await;
    let before = f.lamports(&k.pubkey()).await;
    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    f.send(
        &[ix::keeper_close(&k.pubkey(), &k.token, &mint)],
        &[&k.keypair],
    )
    .await
    .unwrap();
    assert_eq!(f.balance(&k.token).await, bond);
    assert!(f.raw(&keeper).await.is_none());
    assert!(f.raw(&vault).await.is_none());
    assert_eq!(f.lamports(&k.pubkey()).await, before + rent);
}

#[tokio::test]
async fn test_keeper_close_before_unbonding_ends_fails() {
    let mut f = Fixture::new().await;
    let k = f.keeper_wallet().await;
    f.send(&[ix::keeper_deregister(&k.pubkey(), None)], &[&k.keypair])
        .await
        .unwrap();
    f.warp(default_params().unbonding_period - 10).await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_close(&k.pubkey(), &k.token, &mint)],
            &[&k.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::UnbondingNotFinished);
    assert_eq!(f.balance(&k.token).await, 0);
}

#[tokio::test]
async fn test_keeper_close_while_active_fails() {
    let mut f = Fixture::new().await;
    let k = f.keeper_wallet().await;
    let mint = f.mint;
    let res = f
        .send(
            &[ix::keeper_close(&k.pubkey(), &k.token, &mint)],
            &[&k.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::KeeperNotUnbonding);
}

#[tokio::test]
async fn test_keeper_deregister_twice_fails() {
    let mut f = Fixture::new().await;
    let k = f.keeper_wallet().await;
    f.send(&[ix::keeper_deregister(&k.pubkey(), None)], &[&k.keypair])
        .await
        .unwrap();
    let res = f
        .send(&[ix::keeper_deregister(&k.pubkey(), None)], &[&k.keypair])
        .await;
    assert_gpunet_err(res, GpunetError::KeeperNotServing);
    assert_eq!(f.config().await.active_keepers, 0);
}

#[tokio::test]
async fn test_keeper_deregister_someone_elses_keeper_fails() {
    let mut f = Fixture::new().await;
    let victim = f.keeper_wallet().await;
    let thief = f.wallet(0).await;
    // The thief signs but points at the victim's keeper account.
    let ix = substitute(
        ix::keeper_deregister(&thief.pubkey(), None),
        &pda::keeper(&thief.pubkey()),
        &pda::keeper(&victim.pubkey()),
    );
    assert_anchor_err(
        f.send(&[ix], &[&thief.keypair]).await,
        AnchorError::ConstraintSeeds,
    );
    assert_eq!(
        f.keeper(&victim.pubkey()).await.status,
        KeeperStatus::Active
    );
}

#[tokio::test]
async fn test_keeper_close_with_another_keepers_vault_fails() {
    let mut f = Fixture::new().await;
    let a = f.keeper_wallet().await;
    let b = f.keeper_wallet().await;
    let last = Some(pda::keeper(&b.pubkey()));
    f.send(&[ix::keeper_deregister(&a.pubkey(), last)], &[&a.keypair])
        .await
        .unwrap();
    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    let ix = substitute(
        ix::keeper_close(&a.pubkey(), &a.token, &mint),
        &pda::keeper_vault(&pda::keeper(&a.pubkey())),
        &pda::keeper_vault(&pda::keeper(&b.pubkey())),
    );
    assert_anchor_err(
        f.send(&[ix], &[&a.keypair]).await,
        AnchorError::ConstraintSeeds,
    );
    let bond = default_params().keeper_bond;
    assert_eq!(
        f.balance(&pda::keeper_vault(&pda::keeper(&b.pubkey())))
            .await,
        bond
    );
}

#[tokio::test]
async fn test_keeper_vault_gift_does_not_freeze_and_goes_back() {
    let mut f = Fixture::new().await;
    let k = f.keeper_wallet().await;
    let vault = pda::keeper_vault(&pda::keeper(&k.pubkey()));
    f.mint_to(&vault, 3).await; // anyone can send tokens to a token account
    f.send(&[ix::keeper_deregister(&k.pubkey(), None)], &[&k.keypair])
        .await
        .unwrap();
    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    f.send(
        &[ix::keeper_close(&k.pubkey(), &k.token, &mint)],
        &[&k.keypair],
    )
    .await
    .unwrap();
    assert_eq!(f.balance(&k.token).await, default_params().keeper_bond + 3);
}

#[tokio::test]
async fn test_keeper_deregister_keeps_the_active_set_dense() {
    let mut f = Fixture::new().await;
    let a = f.keeper_wallet().await;
    let b = f.keeper_wallet().await;
    let c = f.keeper_wallet().await;
    assert_eq!(f.keeper(&c.pubkey()).await.index, 2);

    // Leaving from the middle: the last keeper must be named, and takes the freed index.
    let res = f
        .send(&[ix::keeper_deregister(&b.pubkey(), None)], &[&b.keypair])
        .await;
    assert_gpunet_err(res, GpunetError::WrongLastKeeper);
    let wrong_last = Some(pda::keeper(&a.pubkey()));
    let res = f
        .send(
            &[ix::keeper_deregister(&b.pubkey(), wrong_last)],
            &[&b.keypair],
        )
        .await;
    assert_gpunet_err(res, GpunetError::WrongLastKeeper);

    let last = Some(pda::keeper(&c.pubkey()));
    f.send(&[ix::keeper_deregister(&b.pubkey(), last)], &[&b.keypair])
        .await
        .unwrap();
    assert_eq!(f.keeper(&a.pubkey()).await.index, 0);
    assert_eq!(f.keeper(&c.pubkey()).await.index, 1);
    assert_eq!(f.keeper(&b.pubkey()).await.index, gpunet::state::NO_INDEX);
    assert_eq!(f.config().await.active_keepers, 2);
}
