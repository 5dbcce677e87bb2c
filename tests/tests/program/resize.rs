//! `lease_resize`: a lease grows or shrinks without closing. The new count bills from the
//! request; escrow moves so that the lease stays funded until the same time; the provider's
//! GPUs and stake follow; and nobody can bill either count for time it did not cover.

use anchor_lang::error::ErrorCode as AnchorError;
use gpunet::error::GpunetError;
use gpunet::instructions::ProviderUpdateArgs;
use gpunet::state::{LeaseStatus, Verdict};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_tests::*;
use solana_program_test::BanksClientError;

use crate::lease::{HOUR, PRICE, STAKE, World};

const LOCK: u64 = 1_000 * TOKEN; // the per-H100 stake lock

impl World {
    /// The user resizes `p` to `gpus`, allowing at most `max_deposit`.
    async fn resize(
        &mut self,
        p: &LeaseParties,
        gpus: u16,
        max_deposit: u64,
    ) -> Result<(), BanksClientError> {
        let ix = ix::lease_resize(
            &self.user.pubkey(),
            &self.user.token,
            &p.lease,
            &p.provider,
            &self.f.mint.clone(),
            gpus,
            max_deposit,
        );
        let kp = self.user.keypair.insecure_clone();
        self.f.send(&[ix], &[&kp]).await
    }

    async fn now(&mut self) -> i64 {
        self.f.clock().await.unix_timestamp
    }
}

#[tokio::test]
async fn test_lease_grows_from_the_request_on_and_stays_funded_until_the_same_time() {
    let mut w = World::new().await;
    let supply = w.f.supply().await;
    let p = w.open(1, 2, HOUR).await;
    let l0 = w.f.lease(&p.lease).await;
    let (start, end) = (l0.start, l0.funded_until().unwrap());
    w.f.warp(300).await;
    w.checkpoint(&p, 1, start, start + 300).await.unwrap();
    w.f.warp(100).await;
    let at = w.now().await;

    // The extra GPU for the time left is the deposit: a smaller allowance is refused.
    let deposit = PRICE * (end - at) as u64;
    assert_gpunet_err(
        w.resize(&p, 3, deposit - 1).await,
        GpunetError::DepositAboveMax,
    );
    let user0 = w.f.balance(&w.user.token).await;
    w.resize(&p, 3, deposit).await.unwrap();
    assert_eq!(user0 - w.f.balance(&w.user.token).await, deposit);
    assert_gpunet_err(w.resize(&p, 4, u64::MAX).await, GpunetError::ResizePending);

    // Booked on the provider at once; the lease still bills two GPUs until the request.
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (3, 3 * LOCK));
    let l = w.f.lease(&p.lease).await;
    assert_eq!((l.gpus, l.pending_gpus, l.resize_at), (2, 3, at));
    assert_eq!((l.stake_locked, l.pending_stake), (2 * LOCK, LOCK));

    // A period past the request is refused: the old count is not billed past it.
    w.f.warp(200).await;
    assert_gpunet_err(
        w.checkpoint(&p, 2, start + 300, at + 1).await,
        GpunetError::PeriodPastResize,
    );
    let prov_tokens = w.f.balance(&w.provider.token).await;
    let paid0 = w.f.lease(&p.lease).await.paid_by_user().unwrap();
    w.checkpoint(&p, 2, start + 300, at).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!(
        l.paid_by_user().unwrap() - paid0,
        PRICE * 2 * (at - start - 300) as u64
    );
    assert!(w.f.balance(&w.provider.token).await > prov_tokens);
    // Applied: three GPUs from the request on, funded until the same time.
    assert_eq!((l.gpus, l.pending_gpus, l.rate_since), (3, 0, at));
    assert_eq!((l.stake_locked, l.pending_stake), (3 * LOCK, 0));
    assert_eq!(l.funded_until().unwrap(), end);

    // The next period bills three GPUs.
    let now = w.now().await;
    w.checkpoint(&p, 3, at, now).await.unwrap();
    let l2 = w.f.lease(&p.lease).await;
    assert_eq!(
        l2.paid_by_user().unwrap() - l.paid_by_user().unwrap(),
        PRICE * 3 * (now - at) as u64
    );

    w.close_by_user(&p).await.unwrap();
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(
        (prov.gpus_leased, prov.locked, prov.active_leases),
        (0, 0, 0)
    );
    assert_eq!(prov.staked, STAKE);
    assert_eq!(w.f.supply().await, supply, "no token created or lost");
}

#[tokio::test]
async fn test_lease_shrinks_refunding_the_unspent_escrow_and_releasing_gpus_when_it_applies() {
    let mut w = World::new().await;
    let other = w.f.wallet(10_000_000).await;
    let supply = w.f.supply().await;
    let p = w.open(1, 3, HOUR).await;
    let l0 = w.f.lease(&p.lease).await;
    let (start, end) = (l0.start, l0.funded_until().unwrap());
    w.f.warp(600).await;
    let at = w.now().await;

    // Two GPUs' escrow for the time left comes back now.
    let user0 = w.f.balance(&w.user.token).await;
    w.resize(&p, 1, 0).await.unwrap();
    let refund = PRICE * 2 * (end - at) as u64;
    assert_eq!(w.f.balance(&w.user.token).await - user0, refund);
    let l = w.f.lease(&p.lease).await;
    assert_eq!((l.gpus, l.pending_gpus, l.withdrawn), (3, 1, refund));
    // The provider keeps the GPUs and their stake until the old count is paid up to the request.
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (3, 3 * LOCK));

    // The keeper cannot bill three GPUs past the request; up to it, it is paid in full.
    w.f.warp(300).await;
    assert_gpunet_err(
        w.checkpoint(&p, 1, start, at + 300).await,
        GpunetError::PeriodPastResize,
    );
    let prov_tokens = w.f.balance(&w.provider.token).await;
    w.checkpoint(&p, 1, start, at).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!(l.paid_by_user().unwrap(), PRICE * 3 * (at - start) as u64);
    assert!(w.f.balance(&w.provider.token).await > prov_tokens);
    assert_eq!((l.gpus, l.pending_gpus, l.stake_locked), (1, 0, LOCK));
    assert_eq!(l.funded_until().unwrap(), end, "funded until the same time");
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (1, LOCK));

    // The GPUs given back can be leased by someone else at once.
    w.f.open_lease(&other, &w.provider.pubkey(), World::args(7, 3, HOUR))
        .await
        .unwrap();

    // The next period bills one GPU, and the escrow pays it to the end.
    let now = w.now().await;
    w.f.warp(end - now).await;
    w.checkpoint(&p, 2, at, end).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!(
        l.paid_by_user().unwrap(),
        PRICE * (3 * (at - start) + (end - at)) as u64
    );
    assert_eq!(
        l.escrow_due().unwrap(),
        0,
        "every token of escrow paid or refunded"
    );
    w.close_by_user(&p).await.unwrap();
    assert_eq!(w.f.supply().await, supply, "no token created or lost");
}

#[tokio::test]
async fn test_lease_resize_settled_up_to_now_applies_at_once() {
    let mut w = World::new().await;
    let p = w.open(1, 2, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(300).await;
    w.checkpoint(&p, 1, start, start + 300).await.unwrap();
    w.resize(&p, 1, 0).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!((l.gpus, l.pending_gpus, l.rate_since), (1, 0, start + 300));
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (1, LOCK));
    // And a grow right after, in the same second, applies at once too.
    w.resize(&p, 4, u64::MAX).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!((l.gpus, l.pending_gpus, l.stake_locked), (4, 0, 4 * LOCK));
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (4, 4 * LOCK));
}

#[tokio::test]
async fn test_lease_resize_refuses_bad_counts_strangers_and_what_the_provider_cannot_give() {
    let mut w = World::new().await;
    let p = w.open(1, 2, HOUR).await;
    for gpus in [0, 2] {
        assert_gpunet_err(
            w.resize(&p, gpus, u64::MAX).await,
            GpunetError::InvalidResize,
        );
    }
    // More than the provider has free.
    let other = w.f.wallet(10_000_000).await;
    let q =
        w.f.open_lease(&other, &w.provider.pubkey(), World::args(1, 1, HOUR))
            .await
            .unwrap();
    assert_gpunet_err(
        w.resize(&p, 4, u64::MAX).await,
        GpunetError::NotEnoughCapacity,
    );

    // Someone else cannot resize the user's lease, signing for itself or naming the user.
    let mint = w.f.mint;
    let ix = ix::lease_resize(
        &other.pubkey(),
        &other.token,
        &p.lease,
        &p.provider,
        &mint,
        1,
        0,
    );
    assert_anchor_err(
        w.f.send(&[ix], &[&other.keypair]).await,
        AnchorError::ConstraintSeeds,
    );
    let ix = ix::lease_resize(
        &w.user.pubkey(),
        &other.token,
        &p.lease,
        &p.provider,
        &mint,
        1,
        0,
    );
    let ix = crate::unsigned(ix, &w.user.pubkey());
    assert_anchor_err(w.f.send(&[ix], &[]).await, AnchorError::AccountNotSigner);
    // A shrink's refund goes to the user's own account only.
    let ix = ix::lease_resize(
        &w.user.pubkey(),
        &other.token,
        &p.lease,
        &p.provider,
        &mint,
        1,
        0,
    );
    let kp = w.user.keypair.insecure_clone();
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::WrongTokenOwner);
    // Nor name another provider's account (its GPUs are not the lease's).
    let second = w.f.provider_wallet(4, STAKE, 0).await;
    let ix = ix::lease_resize(
        &w.user.pubkey(),
        &w.user.token,
        &p.lease,
        &gpunet_sdk::pda::provider(&second.pubkey()),
        &mint,
        3,
        u64::MAX,
    );
    assert_gpunet_err(w.f.send(&[ix], &[&kp]).await, GpunetError::WrongProvider);

    // Not while paused; not a pending lease.
    w.f.set_paused(true).await;
    assert_gpunet_err(w.resize(&p, 3, u64::MAX).await, GpunetError::ProtocolPaused);
    w.f.set_paused(false).await;
    let user = w.user.insecure_clone();
    let pending =
        w.f.open_pending_lease(&user, &w.provider.pubkey(), World::args(3, 1, HOUR))
            .await
            .unwrap();
    let parties = LeaseParties {
        lease: pending,
        ..p
    };
    assert_gpunet_err(
        w.resize(&parties, 2, u64::MAX).await,
        GpunetError::LeaseNotActive,
    );

    // A provider that now asks more does not grow old leases at the old price.
    w.close_by_user_of(&other, &q).await;
    let mut gpu = h100s(4);
    gpu.price_per_gpu_second = PRICE + 1;
    let ix = ix::provider_update(
        &w.provider.pubkey(),
        ProviderUpdateArgs {
            gpu: Some(gpu),
            ..Default::default()
        },
    );
    let pk = w.provider.keypair.insecure_clone();
    w.f.send(&[ix], &[&pk]).await.unwrap();
    assert_gpunet_err(w.resize(&p, 3, u64::MAX).await, GpunetError::PriceAboveMax);
    // Shrinking is still allowed: it gives GPUs back.
    w.resize(&p, 1, 0).await.unwrap();
}

#[tokio::test]
async fn test_a_slash_cancels_a_pending_grow_and_frees_its_booking() {
    let mut w = World::new().await;
    let supply = w.f.supply().await;
    let p = w.open(1, 2, HOUR).await;
    let q = w.open(2, 1, HOUR).await;
    let start = w.f.lease(&p.lease).await.start;
    w.f.warp(300).await;
    w.resize(&p, 3, u64::MAX).await.unwrap();
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (4, 4 * LOCK));
    w.checkpoint_by_verdict(&p, 1, start, start + 100, Verdict::Fail)
        .await;
    // One failed GPU slashed: the grow is cancelled, its booking released, the lease goes on.
    let (k0, k1) = (w.keepers[0].insecure_clone(), w.keepers[1].insecure_clone());
    w.slash_gpus(&p, &[&k0, &k1], 1).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!(
        (l.status, l.gpus, l.pending_gpus),
        (LeaseStatus::Active, 1, 0)
    );
    assert_eq!((l.stake_locked, l.pending_stake), (LOCK, 0));
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (2, 2 * LOCK));
    // A jailed provider's leases do not grow.
    assert_gpunet_err(w.resize(&q, 2, u64::MAX).await, GpunetError::ProviderJailed);
    w.close_by_user(&p).await.unwrap();
    w.close_by_user(&q).await.unwrap();
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(
        (prov.gpus_leased, prov.locked, prov.active_leases),
        (0, 0, 0)
    );
    assert_eq!(w.f.supply().await, supply, "no token created or lost");
}

#[tokio::test]
async fn test_closing_with_a_grow_pending_releases_the_booking() {
    let mut w = World::new().await;
    let supply = w.f.supply().await;
    let p = w.open(1, 1, HOUR).await;
    w.f.warp(120).await;
    w.resize(&p, 3, u64::MAX).await.unwrap();
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!((prov.gpus_leased, prov.locked), (3, 3 * LOCK));
    let user0 = w.f.balance(&w.user.token).await;
    let due = w.f.lease(&p.lease).await.escrow_due().unwrap();
    w.close_by_user(&p).await.unwrap();
    assert_eq!(
        w.f.balance(&w.user.token).await - user0,
        due,
        "the deposit comes back"
    );
    let prov = w.f.provider(&w.provider.pubkey()).await;
    assert_eq!(
        (prov.gpus_leased, prov.locked, prov.active_leases),
        (0, 0, 0)
    );
    assert_eq!(w.f.supply().await, supply, "no token created or lost");
}

#[tokio::test]
async fn test_a_lease_out_of_funds_shrinks_without_refund_and_grows_paying_its_arrears() {
    let mut w = World::new().await;
    let p = w.open(1, 2, 600).await;
    let l0 = w.f.lease(&p.lease).await;
    let (start, end) = (l0.start, l0.funded_until().unwrap());
    w.f.warp(900).await; // funds ran out 300 s ago; within the grace period
    let at = w.now().await;
    let user0 = w.f.balance(&w.user.token).await;
    // A grow pays the two GPUs' time since the funds ran out, up to the request.
    w.resize(&p, 3, u64::MAX).await.unwrap();
    assert_eq!(
        user0 - w.f.balance(&w.user.token).await,
        PRICE * 2 * (at - end) as u64
    );
    let l = w.f.lease(&p.lease).await;
    assert_eq!(l.funded_until().unwrap(), at);
    w.checkpoint(&p, 1, start, at).await.unwrap();
    let l = w.f.lease(&p.lease).await;
    assert_eq!((l.gpus, l.funded_until().unwrap()), (3, at));

    // A lease out of funds has nothing unspent to refund when it shrinks.
    w.close_by_user(&p).await.unwrap();
    let q = w.open(2, 2, 600).await;
    w.f.warp(700).await;
    let user0 = w.f.balance(&w.user.token).await;
    w.resize(&q, 1, 0).await.unwrap();
    assert_eq!(w.f.balance(&w.user.token).await, user0);
}

impl World {
    async fn checkpoint_by_verdict(
        &mut self,
        p: &LeaseParties,
        sequence: u64,
        start: i64,
        end: i64,
        verdict: Verdict,
    ) {
        let k = self.keeper_of(p).insecure_clone();
        self.checkpoint_by(&k, p, sequence, start, end, verdict)
            .await
            .expect("checkpoint");
    }

    async fn close_by_user_of(&mut self, user: &Wallet, p: &LeaseParties) {
        let ix = ix::lease_close(&user.pubkey(), p, &user.token, &user.pubkey());
        self.f.send(&[ix], &[&user.keypair]).await.unwrap();
    }
}
