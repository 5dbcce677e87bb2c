//! A lease resized live, end to end: a chain-mode keeper serving a 2-GPU lease with two real
//! workers of its provider (2 GPUs each) on loopback. The user grows the lease to 4 GPUs and
//! later shrinks it to 1 through the SDK (`gpunet_sdk::resize`); each time the escrow moves by
//! exactly the program's quote, the keeper's checkpoint settles the old count up to the request
//! and applies the new one, and the keeper's cluster follows: the idle worker joins on the
//! grow, shares leave on the shrink. At the close every token is accounted for.

use std::sync::Arc;
use std::time::Duration;

use gpunet::events::LeaseResizeRequested;
use gpunet::state::Verdict;
use gpunet_keeper::chain::{Posted, WatchConfig, Watcher};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::token;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;
use tokio_util::sync::CancellationToken;

use crate::keeper::{Scene, scene, worker_config};
use crate::slash::{Running, run_keeper};

/// Waits until the keeper's cluster of `lease` asks for `gpus` GPUs and has them all.
async fn cluster_gpus(r: &Running, lease: &Pubkey, gpus: u32) {
    let id: Arc<str> = lease.to_string().into();
    let mut last = None;
    for _ in 0..400 {
        let c = r.h.core().cluster(&id).ok();
        if let Some(c) = &c
            && c.gpus_requested == gpus
            && c.gpus_ready == gpus
        {
            return;
        }
        last = c.map(|c| (c.gpus_requested, c.gpus_ready, c.workers.len()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cluster did not come to {gpus} GPUs in 20 s: (requested, ready, workers) {last:?}");
}

async fn resize(s: &Scene, gpus: u16) -> LeaseResizeRequested {
    let l = s.n.client.lease(&s.lease).await.unwrap();
    let now = s.n.client.chain_time().await.unwrap();
    let quote = gpunet_sdk::resize::quote(&l, gpus, now).unwrap();
    let (_, e) = gpunet_sdk::resize::resize(&s.n.client, &s.user, &s.lease, gpus, None)
        .await
        .expect("lease_resize");
    // The request may land a second after the quote: a grow then costs no more than quoted.
    assert!(e.deposit <= quote.deposit && e.resize_at >= now);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_lease_grows_and_shrinks_live_with_exact_balances() {
    let s = scene(1).await;
    let cancel = CancellationToken::new();
    let k = run_keeper(&s, 0, &cancel).await;
    // The keeper's chain follower, as the daemon runs it: it gives the cluster the lease's
    // count on chain.
    Watcher::new(
        &WatchConfig {
            rpc_url: s.n.net.rpc_url().to_string(),
            ws_url: Some(s.n.net.ws_url().to_string()),
            reconcile_every: Duration::from_millis(300),
        },
        k.dir.clone(),
    )
    .spawn(k.h.core().clone(), cancel.clone());
    let mut workers = Vec::new();
    for (key, dir) in [(&s.wkey, "a"), (&s.wkey2, "b")] {
        let d = s.tmp.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        workers.push(gpunet_worker::spawn(worker_config(
            &k.url,
            &s.provider,
            key,
            &d,
        )));
    }
    cluster_gpus(&k, &s.lease, 2).await;
    let l0 = s.n.client.lease(&s.lease).await.unwrap();
    let end = l0.funded_until().unwrap();
    let user0 = s.n.client.token_balance(&s.user_ata).await.unwrap();
    let price = l0.price_per_gpu_second;

    // A minute into the lease (a request in the second it started would apply at once).
    s.n.client.time_travel_by(60).await.unwrap();
    // Grow to 4: two more GPUs for the time the lease is funded for.
    let grow = resize(&s, 4).await;
    assert_eq!(grow.deposit, price * 2 * (end - grow.resize_at) as u64);
    assert_eq!(
        user0 - s.n.client.token_balance(&s.user_ata).await.unwrap(),
        grow.deposit
    );
    let pending = s.n.client.lease(&s.lease).await.unwrap();
    assert_eq!(
        (pending.gpus, pending.pending_gpus),
        (2, 4),
        "waits for the checkpoint"
    );
    // The keeper settles two GPUs up to the request, which applies the new count.
    let checkpointer = k.checkpointer(&s);
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert_eq!(
        checkpointer.checkpoint(&s.lease).await.unwrap(),
        Posted::Posted {
            sequence: 1,
            verdict: Verdict::Pass
        }
    );
    let l1 = s.n.client.lease(&s.lease).await.unwrap();
    assert_eq!((l1.gpus, l1.pending_gpus), (4, 0));
    assert_eq!(
        (l1.paid_until, l1.rate_since),
        (grow.resize_at, grow.resize_at)
    );
    assert_eq!(
        l1.funded_until().unwrap(),
        end,
        "funded until the same time"
    );
    // The idle worker joins: the cluster has the 4 GPUs.
    cluster_gpus(&k, &s.lease, 4).await;

    // Shrink to 1: three GPUs' escrow for the time left comes back.
    let user1 = s.n.client.token_balance(&s.user_ata).await.unwrap();
    let shrink = resize(&s, 1).await;
    assert_eq!(shrink.refund, price * 3 * (end - shrink.resize_at) as u64);
    assert_eq!(
        s.n.client.token_balance(&s.user_ata).await.unwrap() - user1,
        shrink.refund
    );
    s.n.client.time_travel_by(120).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert_eq!(
        checkpointer.checkpoint(&s.lease).await.unwrap(),
        Posted::Posted {
            sequence: 2,
            verdict: Verdict::Pass
        }
    );
    let l2 = s.n.client.lease(&s.lease).await.unwrap();
    assert_eq!(
        (l2.gpus, l2.pending_gpus, l2.paid_until),
        (1, 0, shrink.resize_at)
    );
    // Four GPUs were billed from the grow to the shrink, two before: nothing else.
    assert_eq!(
        l2.paid_by_user().unwrap(),
        price * (2 * (grow.resize_at - l0.start) + 4 * (shrink.resize_at - grow.resize_at)) as u64
    );
    let provider =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap();
    assert_eq!(
        (provider.gpus_leased, provider.locked),
        (1, l2.stake_locked)
    );
    cluster_gpus(&k, &s.lease, 1).await;

    // At the close the user gets the rest: in all it paid exactly what was billed.
    let config = s.n.client.config().await.unwrap();
    let parties = LeaseParties {
        lease: s.lease,
        provider: s.provider,
        keeper: l2.keeper,
        mint: config.mint,
        treasury: s.n.treasury,
    };
    let close = ix::lease_close(
        &s.user.pubkey(),
        &parties,
        &token::ata(&s.user.pubkey(), &config.mint),
        &s.user.pubkey(),
    );
    s.n.client.send(&[close], &s.user, &[]).await.unwrap();
    let user_end = s.n.client.token_balance(&s.user_ata).await.unwrap();
    assert_eq!(user0 + l0.funded - user_end, l2.paid_by_user().unwrap());
    assert!(s.n.client.lease(&s.lease).await.is_err(), "closed");
    let provider =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap();
    assert_eq!((provider.gpus_leased, provider.locked), (0, 0));
    cancel.cancel();
    for w in workers {
        w.cancel.cancel();
        let _ = w.join().await;
    }
}
