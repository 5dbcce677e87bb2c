//! The economic attacks of the program review (issue "The program's economics under attack"),
//! each as its attacker would play it, now refused or unprofitable. Committees are drawn from a
//! slot hash the test sets (`Fixture::set_slot_hash`) so that each scenario is deterministic:
//! the worst case for the honest party is chosen, not hoped for.

use gpunet::error::GpunetError;
use gpunet::instructions::{KeeperSlashArgs, LeaseCheckpointArgs, LeaseOpenArgs};
use gpunet::state::{KeeperStatus, LeaseStatus, ProviderStatus, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::pda;
use gpunet_tests::*;
use solana_sdk::pubkey::Pubkey;

const STAKE: u64 = 4_000 * TOKEN;
const PRICE: u64 = 10;

fn args(nonce: u64, gpus: u16, duration: i64) -> LeaseOpenArgs {
    LeaseOpenArgs {
        nonce,
        gpus,
        duration,
        max_price_per_gpu_second: PRICE,
    }
}

fn keys(wallets: &[&Wallet]) -> Vec<Pubkey> {
    wallets.iter().map(|w| pda::keeper(&w.pubkey())).collect()
}

/// Sets the slot hash to the first of 256 candidates whose committee for `lease` satisfies
/// `want`, and returns that committee (the lease stays pending).
async fn choose_hash(
    f: &mut Fixture,
    lease: &Pubkey,
    want: impl Fn(&[Pubkey]) -> bool,
) -> Vec<Pubkey> {
    for i in 0..=255u8 {
        f.set_slot_hash([i; 32]).await;
        let committee = f.expected_committee(lease).await.expect("draw computable");
        if want(&committee) {
            return committee;
        }
    }
    panic!("no slot hash among 256 gives the committee wanted");
}

/// Draws `lease` with the hash `choose_hash` found; returns its parties.
async fn draw_where(
    f: &mut Fixture,
    lease: &Pubkey,
    want: impl Fn(&[Pubkey]) -> bool,
) -> LeaseParties {
    let committee = choose_hash(f, lease, want).await;
    f.send(&[ix::lease_draw_committee(lease, &committee)], &[])
        .await
        .expect("draw");
    f.parties(lease).await
}

async fn slash(
    f: &mut Fixture,
    parties: &LeaseParties,
    user_token: &Pubkey,
    signers: &[&Wallet],
) -> Result<(), solana_program_test::BanksClientError> {
    let wallets: Vec<_> = signers.iter().map(|w| w.pubkey()).collect();
    let gpus = f.lease(&parties.lease).await.gpus;
    let ix = ix::provider_slash(parties, user_token, &wallets, [9; 32], gpus);
    let kps: Vec<_> = signers.iter().map(|w| w.keypair.insecure_clone()).collect();
    let refs: Vec<_> = kps.iter().collect();
    f.send(&[ix], &refs).await
}

async fn close(
    f: &mut Fixture,
    user: &Wallet,
    parties: &LeaseParties,
) -> Result<(), solana_program_test::BanksClientError> {
    let ix = ix::lease_close(&user.pubkey(), parties, &user.token, &user.pubkey());
    f.send(&[ix], &[&user.keypair]).await
}

async fn checkpoint(
    f: &mut Fixture,
    keeper: &Wallet,
    parties: &LeaseParties,
    provider_token: &Pubkey,
    sequence: u64,
    start: i64,
    end: i64,
    verdict: Verdict,
) -> Result<(), solana_program_test::BanksClientError> {
    let ix = ix::lease_checkpoint(
        &keeper.pubkey(),
        parties,
        provider_token,
        &keeper.token,
        LeaseCheckpointArgs {
            sequence,
            period_start: start,
            period_end: end,
            proof_digest: [7; 32],
            verdict,
            score: 1,
        },
    );
    f.send(&[ix], &[&keeper.keypair]).await
}

/// The keeper with the highest index of the active set, unless that is `not`.
async fn last_keeper(f: &mut Fixture, not: &Pubkey) -> Option<Pubkey> {
    let active = f.config().await.active_keepers;
    f.keeper_accounts()
        .await
        .into_iter()
        .find(|(_, k)| k.status == KeeperStatus::Active && k.index + 1 == active)
        .map(|(a, _)| a)
        .filter(|a| a != not)
}

/// Finding 1. One party registers two keepers beside three honest ones, opens a one-second
/// 4-GPU lease on an honest provider and tries to slash it with its own keepers.
#[tokio::test]
async fn test_sybil_keepers_slash_honest_provider_for_profit() {
    let mut f = Fixture::new().await;
    for _ in 0..3 {
        f.keeper_wallet().await; // honest
    }
    let s0 = f.keeper_wallet().await;
    let s1 = f.keeper_wallet().await;
    let sybils = keys(&[&s0, &s1]);
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let attacker = f.wallet(1_000_000).await;
    let treasury = f.treasury;
    let wealth = async |f: &mut Fixture| {
        f.balance(&attacker.token).await + f.balance(&s0.token).await + f.balance(&s1.token).await
    };
    let before = wealth(&mut f).await;

    // The usual case: the committee is a random sample of the five, and the Sybils are not
    // both on it. Keepers off the committee cannot sign, however many the attacker has.
    let a = f
        .open_pending_lease(&attacker, &provider.pubkey(), args(1, 4, 1))
        .await
        .unwrap();
    let pa = draw_where(&mut f, &a, |c| {
        c.iter().filter(|k| sybils.contains(k)).count() < 2
    })
    .await;
    assert_gpunet_err(
        slash(&mut f, &pa, &attacker.token, &[&s0, &s1]).await,
        GpunetError::NotCommitteeMember,
    );
    assert_eq!(f.provider(&provider.pubkey()).await.staked, STAKE);
    close(&mut f, &attacker, &pa).await.unwrap();

    // The worst case: the draw puts both Sybils on the committee. The slash goes through (the
    // committee is the judge), but the user is compensated only for what it paid — nothing —
    // so the stake goes to the treasury and the attacker ends no richer.
    f.advance_slots(1).await;
    let b = f
        .open_pending_lease(&attacker, &provider.pubkey(), args(2, 4, 1))
        .await
        .unwrap();
    let pb = draw_where(&mut f, &b, |c| sybils.iter().all(|s| c.contains(s))).await;
    let treasury0 = f.balance(&treasury).await;
    slash(&mut f, &pb, &attacker.token, &[&s0, &s1])
        .await
        .unwrap();
    let slashed = 4 * 1_000 * TOKEN / 2;
    assert_eq!(f.balance(&treasury).await - treasury0, slashed);
    close(&mut f, &attacker, &pb.ended()).await.unwrap();
    let after = wealth(&mut f).await;
    assert!(after <= before, "the attacker gained {}", after - before);
    assert_eq!(after, before, "deposits came back, nothing more");
}

/// Finding 2, provider side: after a slash the provider empties and closes its account; the
/// user's escrow must still come back.
#[tokio::test]
async fn test_slashed_lease_is_stranded_after_provider_closes() {
    let mut f = Fixture::new().await;
    let k0 = f.keeper_wallet().await;
    let k1 = f.keeper_wallet().await;
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let user = f.wallet(1_000_000).await;
    let p = f
        .open_lease(&user, &provider.pubkey(), args(1, 2, 3_600))
        .await
        .unwrap();
    slash(&mut f, &p, &user.token, &[&k0, &k1]).await.unwrap();
    // The provider takes out what is left and closes its account.
    let left = f.provider(&provider.pubkey()).await.staked;
    let kp = Wallet::insecure_clone(&provider);
    f.send(
        &[ix::provider_unstake_request(&provider.pubkey(), left)],
        &[&kp.keypair],
    )
    .await
    .unwrap();
    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    f.send(
        &[
            ix::provider_withdraw(&provider.pubkey(), &provider.token, &mint),
            ix::provider_close(&provider.pubkey(), &provider.token, &mint),
        ],
        &[&kp.keypair],
    )
    .await
    .unwrap();
    assert!(f.raw(&p.provider).await.is_none());
    // The user still closes the ended lease and gets the whole escrow back.
    let user0 = f.balance(&user.token).await;
    close(&mut f, &user, &p.ended()).await.unwrap();
    assert_eq!(f.balance(&user.token).await - user0, PRICE * 2 * 3_600);
    assert!(f.raw(&p.lease).await.is_none());
}

/// Finding 2, keeper side: after a slash the lease's keeper leaves and closes its account.
#[tokio::test]
async fn test_slashed_lease_is_stranded_after_keeper_closes() {
    let mut f = Fixture::new().await;
    let k0 = f.keeper_wallet().await;
    let k1 = f.keeper_wallet().await;
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let user = f.wallet(1_000_000).await;
    let p = f
        .open_lease(&user, &provider.pubkey(), args(1, 2, 3_600))
        .await
        .unwrap();
    slash(&mut f, &p, &user.token, &[&k0, &k1]).await.unwrap();
    let k = if pda::keeper(&k0.pubkey()) == p.keeper {
        Wallet::insecure_clone(&k0)
    } else {
        Wallet::insecure_clone(&k1)
    };
    let last = last_keeper(&mut f, &p.keeper).await;
    let mint = f.mint;
    f.send(&[ix::keeper_deregister(&k.pubkey(), last)], &[&k.keypair])
        .await
        .unwrap();
    f.warp(default_params().unbonding_period).await;
    f.send(
        &[ix::keeper_close(&k.pubkey(), &k.token, &mint)],
        &[&k.keypair],
    )
    .await
    .unwrap();
    assert!(f.raw(&p.keeper).await.is_none());
    let user0 = f.balance(&user.token).await;
    close(&mut f, &user, &p.ended()).await.unwrap();
    assert_eq!(f.balance(&user.token).await - user0, PRICE * 2 * 3_600);
}

/// Finding 3: a user with its own keeper opens and closes leases to park the assignment on
/// it (the old round-robin cursor). The committee depends only on the lease and a slot hash
/// after its open; no sequence of opens and closes moves it, and no other list is accepted.
#[tokio::test]
async fn test_user_steers_cursor_to_own_keeper() {
    let mut f = Fixture::new().await;
    for _ in 0..3 {
        f.keeper_wallet().await;
    }
    let own = f.keeper_wallet().await;
    let own_key = pda::keeper(&own.pubkey());
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let user = f.wallet(1_000_000).await;
    let lease = f
        .open_pending_lease(&user, &provider.pubkey(), args(1, 1, 600))
        .await
        .unwrap();
    let committee = choose_hash(&mut f, &lease, |c| c[0] != own_key).await;
    // Open and close other leases, as the old attack did.
    for nonce in 2..8 {
        let other = f
            .open_pending_lease(&user, &provider.pubkey(), args(nonce, 1, 60))
            .await
            .unwrap();
        let parties = f.parties(&other).await;
        close(&mut f, &user, &parties).await.unwrap();
    }
    assert_eq!(f.expected_committee(&lease).await.unwrap(), committee);
    // Naming its own keeper first is refused, in its place or in anyone's.
    let mut steered = committee.clone();
    match steered.iter().position(|k| *k == own_key) {
        Some(i) => steered.swap(0, i),
        None => steered[0] = own_key,
    }
    assert_gpunet_err(
        f.send(&[ix::lease_draw_committee(&lease, &steered)], &[])
            .await,
        GpunetError::CommitteeMismatch,
    );
    f.send(&[ix::lease_draw_committee(&lease, &committee)], &[])
        .await
        .unwrap();
    assert_ne!(f.lease(&lease).await.keeper, own_key);
}

/// A keeper's checkpoints can be slashed by the rest of its committee; the user is
/// compensated up to what it paid, and the keeper leaves the active set.
#[tokio::test]
async fn test_keeper_slash_by_committee_quorum_takes_bond_and_compensates_user() {
    let mut f = Fixture::new().await;
    let mut keepers = Vec::new();
    for _ in 0..4 {
        keepers.push(f.keeper_wallet().await);
    }
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let user = f.wallet(1_000_000).await;
    let lease = f
        .open_pending_lease(&user, &provider.pubkey(), args(1, 1, 3_600))
        .await
        .unwrap();
    let p = draw_where(&mut f, &lease, |_| true).await;
    let committee = f.lease(&lease).await.committee().to_vec();
    let by_key = |k: &Pubkey| {
        Wallet::insecure_clone(
            keepers
                .iter()
                .find(|w| pda::keeper(&w.pubkey()) == *k)
                .unwrap(),
        )
    };
    let accused = by_key(&committee[0]);
    let (m1, m2) = (by_key(&committee[1]), by_key(&committee[2]));
    let outsider = Wallet::insecure_clone(
        keepers
            .iter()
            .find(|w| !committee.contains(&pda::keeper(&w.pubkey())))
            .unwrap(),
    );
    let slash_keeper = |signers: &[&Wallet], last: Option<Pubkey>| {
        let wallets: Vec<_> = signers.iter().map(|w| w.pubkey()).collect();
        ix::keeper_slash(
            &p,
            &committee[0],
            last,
            &user.token,
            &wallets,
            KeeperSlashArgs {
                sequence: 1,
                evidence_digest: [5; 32],
            },
        )
    };
    let last = last_keeper(&mut f, &committee[0]).await;
    // Nothing to dispute before a checkpoint.
    assert_gpunet_err(
        f.send(
            &[slash_keeper(&[&m1, &m2], last)],
            &[&m1.keypair, &m2.keypair],
        )
        .await,
        GpunetError::SequenceNotNext,
    );
    let start = f.lease(&lease).await.start;
    f.warp(600).await;
    checkpoint(
        &mut f,
        &accused,
        &p,
        &provider.token,
        1,
        start,
        start + 600,
        Verdict::Pass,
    )
    .await
    .unwrap();
    let paid = PRICE * 600;
    // One co-signer, the accused itself, or a keeper off the committee: refused.
    assert_gpunet_err(
        f.send(&[slash_keeper(&[&m1], last)], &[&m1.keypair]).await,
        GpunetError::SlashQuorumNotMet,
    );
    assert_gpunet_err(
        f.send(
            &[slash_keeper(&[&m1, &accused], last)],
            &[&m1.keypair, &accused.keypair],
        )
        .await,
        GpunetError::SelfSlash,
    );
    assert_gpunet_err(
        f.send(
            &[slash_keeper(&[&m1, &outsider], last)],
            &[&m1.keypair, &outsider.keypair],
        )
        .await,
        GpunetError::NotCommitteeMember,
    );
    let user0 = f.balance(&user.token).await;
    let treasury0 = f.balance(&f.treasury.clone()).await;
    f.send(
        &[slash_keeper(&[&m1, &m2], last)],
        &[&m1.keypair, &m2.keypair],
    )
    .await
    .unwrap();
    let bond = default_params().keeper_bond;
    let taken = bond / 2;
    let k = f.keeper(&accused.pubkey()).await;
    assert_eq!((k.bond, k.slashed_total), (bond - taken, taken));
    assert_eq!(k.status, KeeperStatus::Draining);
    assert_eq!(f.config().await.active_keepers, 3);
    assert_eq!(f.balance(&user.token).await - user0, paid);
    assert_eq!(
        f.balance(&f.treasury.clone()).await - treasury0,
        taken - paid
    );
    assert_eq!(
        f.balance(&pda::keeper_vault(&committee[0])).await,
        bond - taken
    );
    // Each checkpoint is judged once.
    assert_gpunet_err(
        f.send(
            &[slash_keeper(&[&m1, &m2], None)],
            &[&m1.keypair, &m2.keypair],
        )
        .await,
        GpunetError::AlreadyJudged,
    );
    // The draining keeper posts no more checkpoints; its successor takes the lease at once.
    let now = f.clock().await.unix_timestamp;
    assert_gpunet_err(
        checkpoint(
            &mut f,
            &accused,
            &p,
            &provider.token,
            2,
            start + 600,
            now,
            Verdict::Pass,
        )
        .await,
        GpunetError::KeeperNotActive,
    );
    let ix = ix::lease_reassign_keeper(&m1.pubkey(), &lease, &committee[0], &[]);
    f.send(&[ix], &[&m1.keypair]).await.unwrap();
    assert_eq!(f.lease(&lease).await.keeper, committee[1]);
}

/// Finding 6: a keeper drains (no new leases), its leases pass to their successors at once,
/// and then it deregisters and leaves.
#[tokio::test]
async fn test_keeper_drains_and_leaves_once_its_leases_pass_to_successors() {
    let mut f = Fixture::new().await;
    let k0 = f.keeper_wallet().await;
    let k1 = f.keeper_wallet().await;
    let k2 = f.keeper_wallet().await;
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let user = f.wallet(1_000 * TOKEN).await;
    let p = f
        .open_lease(&user, &provider.pubkey(), args(1, 1, 30 * 24 * 3_600))
        .await
        .unwrap();
    let wallets = [&k0, &k1, &k2];
    let find = |k: &Pubkey| {
        Wallet::insecure_clone(
            wallets
                .iter()
                .find(|w| pda::keeper(&w.pubkey()) == *k)
                .unwrap(),
        )
    };
    let committee = f.lease(&p.lease).await.committee().to_vec();
    let leaving = find(&committee[0]);
    let successor = find(&committee[1]);
    let last = last_keeper(&mut f, &committee[0]).await;
    f.send(
        &[ix::keeper_drain(&leaving.pubkey(), last)],
        &[&leaving.keypair],
    )
    .await
    .unwrap();
    assert_eq!(
        f.keeper(&leaving.pubkey()).await.status,
        KeeperStatus::Draining
    );
    assert_eq!(f.config().await.active_keepers, 2);
    // It takes no new lease: committees are drawn from the active set only.
    f.advance_slots(1).await;
    let q = f
        .open_lease(&user, &provider.pubkey(), args(2, 1, 600))
        .await
        .unwrap();
    assert!(!f.lease(&q.lease).await.in_committee(&committee[0]));
    // It cannot leave while it still holds a lease; the successor takes it without waiting.
    assert_gpunet_err(
        f.send(
            &[ix::keeper_deregister(&leaving.pubkey(), None)],
            &[&leaving.keypair],
        )
        .await,
        GpunetError::KeeperHasLeases,
    );
    let ix = ix::lease_reassign_keeper(&successor.pubkey(), &p.lease, &committee[0], &[]);
    f.send(&[ix], &[&successor.keypair]).await.unwrap();
    f.send(
        &[ix::keeper_deregister(&leaving.pubkey(), None)],
        &[&leaving.keypair],
    )
    .await
    .unwrap();
    f.warp(default_params().unbonding_period).await;
    let mint = f.mint;
    f.send(
        &[ix::keeper_close(&leaving.pubkey(), &leaving.token, &mint)],
        &[&leaving.keypair],
    )
    .await
    .unwrap();
    assert_eq!(
        f.balance(&leaving.token).await,
        default_params().keeper_bond
    );
}

/// The successor is deterministic: the next active member in committee order, the members it
/// skips proven inactive.
#[tokio::test]
async fn test_lease_reassign_to_anyone_but_the_successor_fails() {
    let mut f = Fixture::new().await;
    let mut keepers = Vec::new();
    for _ in 0..3 {
        keepers.push(f.keeper_wallet().await);
    }
    let provider = f.provider_wallet(4, STAKE, 0).await;
    let user = f.wallet(1_000 * TOKEN).await;
    let p = f
        .open_lease(&user, &provider.pubkey(), args(1, 1, 30 * 24 * 3_600))
        .await
        .unwrap();
    let committee = f.lease(&p.lease).await.committee().to_vec();
    let find = |k: &Pubkey| {
        Wallet::insecure_clone(
            keepers
                .iter()
                .find(|w| pda::keeper(&w.pubkey()) == *k)
                .unwrap(),
        )
    };
    let (second, third) = (find(&committee[1]), find(&committee[2]));
    let params = default_params();
    f.warp(params.checkpoint_interval + params.grace_period + 1)
        .await;
    // The third member may not jump the second while the second is active.
    let ix = ix::lease_reassign_keeper(&third.pubkey(), &p.lease, &committee[0], &[committee[1]]);
    assert_gpunet_err(
        f.send(&[ix], &[&third.keypair]).await,
        GpunetError::NotSuccessor,
    );
    let ix = ix::lease_reassign_keeper(&third.pubkey(), &p.lease, &committee[0], &[]);
    assert_gpunet_err(
        f.send(&[ix], &[&third.keypair]).await,
        GpunetError::NotSuccessor,
    );
    // Once the second has drained, the third is the successor.
    let last = last_keeper(&mut f, &committee[1]).await;
    f.send(
        &[ix::keeper_drain(&second.pubkey(), last)],
        &[&second.keypair],
    )
    .await
    .unwrap();
    let ix = ix::lease_reassign_keeper(&third.pubkey(), &p.lease, &committee[0], &[committee[1]]);
    f.send(&[ix], &[&third.keypair]).await.unwrap();
    assert_eq!(f.lease(&p.lease).await.keeper, committee[2]);
}

/// One slash is not death: after the jail period, restaking lets the provider take leases.
#[tokio::test]
async fn test_jailed_provider_returns_after_cooldown_by_restaking() {
    let mut f = Fixture::new().await;
    let k0 = f.keeper_wallet().await;
    let k1 = f.keeper_wallet().await;
    let provider = f.provider_wallet(4, STAKE, 2_000 * TOKEN).await;
    let user = f.wallet(1_000_000).await;
    let p = f
        .open_lease(&user, &provider.pubkey(), args(1, 2, 600))
        .await
        .unwrap();
    slash(&mut f, &p, &user.token, &[&k0, &k1]).await.unwrap();
    let mint = f.mint;
    let kp = Wallet::insecure_clone(&provider);
    // Restaking during the jail adds stake but keeps the jail.
    f.send(
        &[ix::provider_stake(
            &provider.pubkey(),
            &provider.token,
            &mint,
            500 * TOKEN,
        )],
        &[&kp.keypair],
    )
    .await
    .unwrap();
    assert_eq!(
        f.provider(&provider.pubkey()).await.status,
        ProviderStatus::Jailed
    );
    f.warp(default_params().jail_period).await;
    f.send(
        &[ix::provider_stake(
            &provider.pubkey(),
            &provider.token,
            &mint,
            500 * TOKEN,
        )],
        &[&kp.keypair],
    )
    .await
    .unwrap();
    let prov = f.provider(&provider.pubkey()).await;
    assert_eq!(prov.status, ProviderStatus::Active);
    assert_eq!(prov.staked, STAKE);
    close(&mut f, &user, &p.ended()).await.unwrap();
    f.advance_slots(1).await;
    let q = f
        .open_lease(&user, &provider.pubkey(), args(2, 2, 600))
        .await
        .unwrap();
    assert_eq!(f.lease(&q.lease).await.status, LeaseStatus::Active);
}
