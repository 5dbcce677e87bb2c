//! Admin and pause powers (findings 4, 5 and 7 of the program review): agreed terms are frozen
//! per lease, a pause stops new business on every gated instruction but never an exit, and
//! paused time does not count toward any deadline.

use gpunet::error::GpunetError;
use gpunet::instructions::{
    ConfigUpdateArgs, KeeperSlashArgs, LeaseCheckpointArgs, LeaseOpenArgs, ProviderUpdateArgs,
};
use gpunet::state::{KeeperStatus, LeaseTerms, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::pda;
use gpunet_tests::*;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;

const STAKE: u64 = 4_000 * TOKEN;
const PRICE: u64 = 10;
const HOUR: i64 = 3_600;

fn args(nonce: u64, gpus: u16, duration: i64) -> LeaseOpenArgs {
    LeaseOpenArgs {
        nonce,
        gpus,
        duration,
        max_price_per_gpu_second: PRICE,
    }
}

/// Two keepers (both on every committee), a provider with 4 H100s and 2,000 spare tokens, a
/// user, one active lease.
struct World {
    f: Fixture,
    keepers: Vec<Wallet>,
    provider: Wallet,
    user: Wallet,
    lease: LeaseParties,
}

impl World {
    async fn new() -> Self {
        let mut f = Fixture::new().await;
        let keepers = vec![f.keeper_wallet().await, f.keeper_wallet().await];
        let provider = f.provider_wallet(4, STAKE, 2_000 * TOKEN).await;
        let user = f.wallet(10_000_000).await;
        let lease = f
            .open_lease(&user, &provider.pubkey(), args(1, 1, HOUR))
            .await
            .unwrap();
        World {
            f,
            keepers,
            provider,
            user,
            lease,
        }
    }

    fn keeper_of(&self, keeper: &Pubkey) -> Wallet {
        Wallet::insecure_clone(
            self.keepers
                .iter()
                .find(|k| pda::keeper(&k.pubkey()) == *keeper)
                .unwrap(),
        )
    }

    fn checkpoint_ix(&self, sequence: u64, start: i64, end: i64) -> (Instruction, Wallet) {
        let k = self.keeper_of(&self.lease.keeper);
        let ix = ix::lease_checkpoint(
            &k.pubkey(),
            &self.lease,
            &self.provider.token,
            &k.token,
            LeaseCheckpointArgs {
                sequence,
                period_start: start,
                period_end: end,
                proof_digest: [1; 32],
                verdict: Verdict::Pass,
                score: 1,
            },
        );
        (ix, k)
    }
}

/// Finding 4: the admin raises every fee and the slash fraction and shortens the grace; the
/// open lease keeps the terms it was opened with, new leases get the new ones.
#[tokio::test]
async fn test_admin_changes_leave_open_leases_on_their_terms() {
    let mut w = World::new().await;
    let agreed = LeaseTerms::from_params(&default_params());
    assert_eq!(w.f.lease(&w.lease.lease).await.terms, agreed);
    let mut harsh = default_params();
    harsh.protocol_fee_bps = 2_000;
    harsh.keeper_fee_bps = 2_000;
    harsh.slash_fraction_bps = 10_000;
    harsh.grace_period = 60;
    harsh.checkpoint_interval = 60;
    w.f.update_config(ConfigUpdateArgs {
        params: Some(harsh.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let start = w.f.lease(&w.lease.lease).await.start;
    w.f.warp(600).await;
    let provider0 = w.f.balance(&w.provider.token).await;
    let (ix, k) = w.checkpoint_ix(1, start, start + 600);
    w.f.send(&[ix], &[&k.keypair]).await.unwrap();
    // 6,000 gross at the agreed 5% + 2%, not 20% + 20%.
    assert_eq!(
        w.f.balance(&w.provider.token).await - provider0,
        6_000 * 93 / 100
    );
    assert_eq!(w.f.lease(&w.lease.lease).await.terms, agreed);
    // A lease opened now agrees to the new terms.
    let user = Wallet::insecure_clone(&w.user);
    let provider = w.provider.pubkey();
    let q =
        w.f.open_lease(&user, &provider, args(2, 1, HOUR))
            .await
            .unwrap();
    assert_eq!(
        w.f.lease(&q.lease).await.terms,
        LeaseTerms::from_params(&harsh)
    );
}

/// Finding 4 and 5: while paused, every instruction of new business is refused, and every
/// exit works: the user tops up and closes, the provider unstakes and withdraws, a keeper
/// leaves and takes its bond back.
#[tokio::test]
async fn test_pause_gates_new_business_and_never_freezes_exits() {
    let mut w = World::new().await;
    let idle = w.f.keeper_wallet().await; // a keeper with no lease, to leave during the pause
    let user = Wallet::insecure_clone(&w.user);
    let provider = w.provider.pubkey();
    let pending =
        w.f.open_pending_lease(&user, &provider, args(2, 1, HOUR))
            .await
            .unwrap();
    w.f.advance_slots(2).await;
    let start = w.f.lease(&w.lease.lease).await.start;
    w.f.warp(600).await;
    w.f.set_paused(true).await;
    let mint = w.f.mint;
    let paused = GpunetError::ProtocolPaused;

    // New business: each gated instruction, one by one.
    let newcomer = w.f.wallet(10_000 * TOKEN).await;
    let res =
        w.f.open_pending_lease(&user, &provider, args(3, 1, HOUR))
            .await;
    assert_gpunet_err(res.map(|_| ()), paused);
    let ix = ix::keeper_register(&newcomer.pubkey(), &newcomer.token, &mint, KEEPER_ENDPOINT);
    assert_gpunet_err(w.f.send(&[ix], &[&newcomer.keypair]).await, paused);
    let ix = ix::provider_register(&newcomer.pubkey(), &mint, provider_args(1));
    assert_gpunet_err(w.f.send(&[ix], &[&newcomer.keypair]).await, paused);
    let pk = Wallet::insecure_clone(&w.provider);
    let ix = ix::provider_stake(&provider, &pk.token, &mint, TOKEN);
    assert_gpunet_err(w.f.send(&[ix], &[&pk.keypair]).await, paused);
    let ix = ix::provider_update(
        &provider,
        ProviderUpdateArgs {
            region: Some("eu-north".into()),
            zone: None,
            endpoint: None,
            gpu: None,
            workers: None,
        },
    );
    assert_gpunet_err(w.f.send(&[ix], &[&pk.keypair]).await, paused);
    let (ix, k) = w.checkpoint_ix(1, start, start + 600);
    assert_gpunet_err(w.f.send(&[ix], &[&k.keypair]).await, paused);
    let committee = w.f.expected_committee(&pending).await.unwrap();
    let ix = ix::lease_draw_committee(&pending, &committee);
    assert_gpunet_err(w.f.send(&[ix], &[]).await, paused);
    let other = w
        .keepers
        .iter()
        .find(|k| pda::keeper(&k.pubkey()) != w.lease.keeper)
        .map(Wallet::insecure_clone)
        .unwrap();
    let ix = ix::lease_reassign_keeper(&other.pubkey(), &w.lease.lease, &w.lease.keeper, &[]);
    assert_gpunet_err(w.f.send(&[ix], &[&other.keypair]).await, paused);
    let (k0, k1) = (
        Wallet::insecure_clone(&w.keepers[0]),
        Wallet::insecure_clone(&w.keepers[1]),
    );
    let ix = ix::provider_slash(
        &w.lease,
        &user.token,
        &[k0.pubkey(), k1.pubkey()],
        [0; 32],
        1,
    );
    assert_gpunet_err(w.f.send(&[ix], &[&k0.keypair, &k1.keypair]).await, paused);
    let ix = ix::keeper_slash(
        &w.lease,
        &w.lease.keeper,
        None,
        &user.token,
        &[other.pubkey()],
        KeeperSlashArgs {
            sequence: 1,
            evidence_digest: [0; 32],
        },
    );
    assert_gpunet_err(w.f.send(&[ix], &[&other.keypair]).await, paused);

    // Exits: all of them work while paused.
    let ix = ix::lease_top_up(&user.pubkey(), &user.token, &w.lease.lease, &mint, 1_000);
    w.f.send(&[ix], &[&user.keypair]).await.unwrap();
    let user0 = w.f.balance(&user.token).await;
    let ix = ix::lease_close(&user.pubkey(), &w.lease, &user.token, &user.pubkey());
    w.f.send(&[ix], &[&user.keypair]).await.unwrap();
    assert_eq!(
        w.f.balance(&user.token).await - user0,
        PRICE * HOUR as u64 + 1_000,
        "unverified time is refunded in full"
    );
    let parties = w.f.parties(&pending).await;
    let ix = ix::lease_close(&user.pubkey(), &parties, &user.token, &user.pubkey());
    w.f.send(&[ix], &[&user.keypair]).await.unwrap();
    let ix = ix::provider_unstake_request(&provider, 1_000 * TOKEN);
    w.f.send(&[ix], &[&pk.keypair]).await.unwrap();
    let ix = ix::keeper_update(&idle.pubkey(), "grpc://moved.example:7100");
    w.f.send(&[ix], &[&idle.keypair]).await.unwrap();
    let ix = ix::keeper_deregister(&idle.pubkey(), None);
    w.f.send(&[ix], &[&idle.keypair]).await.unwrap();
    w.f.warp(default_params().unbonding_period).await;
    let ix = ix::provider_withdraw(&provider, &pk.token, &mint);
    w.f.send(&[ix], &[&pk.keypair]).await.unwrap();
    let ix = ix::keeper_close(&idle.pubkey(), &idle.token, &mint);
    w.f.send(&[ix], &[&idle.keypair]).await.unwrap();
    assert_eq!(w.f.balance(&idle.token).await, default_params().keeper_bond);
    assert!(w.f.config().await.paused);
}

/// Finding 5: a pause longer than interval + grace neither lets anyone take a lease from its
/// keeper, nor lets a stranger close it, the moment it ends.
#[tokio::test]
async fn test_pause_time_does_not_count_toward_grace_or_reassignment() {
    let mut w = World::new().await;
    let other = w
        .keepers
        .iter()
        .find(|k| pda::keeper(&k.pubkey()) != w.lease.keeper)
        .map(Wallet::insecure_clone)
        .unwrap();
    let reassign = ix::lease_reassign_keeper(&other.pubkey(), &w.lease.lease, &w.lease.keeper, &[]);
    w.f.warp(100).await;
    w.f.set_paused(true).await;
    w.f.warp(10 * HOUR).await;
    w.f.set_paused(false).await;
    let c = w.f.config().await;
    assert_eq!((c.paused, c.paused_seconds), (false, 10 * HOUR));
    // Right after the pause: the keeper is not late, the lease has not expired.
    assert_gpunet_err(
        w.f.send(&[reassign.clone()], &[&other.keypair]).await,
        GpunetError::KeeperNotLate,
    );
    let stranger = w.f.wallet(0).await;
    let ix = ix::lease_close(
        &stranger.pubkey(),
        &w.lease,
        &w.user.token,
        &w.user.pubkey(),
    );
    assert_gpunet_err(
        w.f.send(&[ix], &[&stranger.keypair]).await,
        GpunetError::NotClosableYet,
    );
    // Once interval + grace have passed outside the pause, the successor may take over.
    let p = default_params();
    w.f.warp(p.checkpoint_interval + p.grace_period).await;
    w.f.send(&[reassign], &[&other.keypair]).await.unwrap();
    assert_eq!(
        w.f.lease(&w.lease.lease).await.keeper,
        pda::keeper(&other.pubkey())
    );
}

/// Keepers publish their gRPC endpoint at registration and change it with `keeper_update`.
#[tokio::test]
async fn test_keeper_endpoint_is_published_and_updated_by_its_keeper_only() {
    let mut f = Fixture::new().await;
    let k = f.keeper_wallet().await;
    assert_eq!(f.keeper(&k.pubkey()).await.endpoint, KEEPER_ENDPOINT);
    let ix = ix::keeper_update(&k.pubkey(), "");
    assert_gpunet_err(
        f.send(&[ix], &[&k.keypair]).await,
        GpunetError::InvalidEndpoint,
    );
    let ix = ix::keeper_update(&k.pubkey(), "grpcs://k1.example:443");
    f.send(&[ix], &[&k.keypair]).await.unwrap();
    let keeper = f.keeper(&k.pubkey()).await;
    assert_eq!(keeper.endpoint, "grpcs://k1.example:443");
    assert_eq!(keeper.status, KeeperStatus::Active);
    // Someone else's signature cannot change it.
    let thief = f.wallet(0).await;
    let mut ix = ix::keeper_update(&k.pubkey(), "grpc://evil.example:1");
    ix.accounts[0].pubkey = thief.pubkey();
    assert!(f.send(&[ix], &[&thief.keypair]).await.is_err());
    assert_eq!(
        f.keeper(&k.pubkey()).await.endpoint,
        "grpcs://k1.example:443"
    );
}
