//! One worker serving two keepers: on the localnet (in this process: three keepers and the demo
//! provider's two workers of two GPUs, following leases as `gpunet worker run` does), two
//! 1-GPU leases of the provider served by different keepers land on the same machine on
//! different GPUs — each keeper was offered only its share — and a task on each lease sees
//! only its own GPU; the third keeper, on both committees, gets a standby connection.

use std::sync::Arc;
use std::time::Duration;

use gpunet_sdk::gpunet::instructions::LeaseOpenArgs;
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::task::{Client, SigningKey, pb, spec};
use gpunet_sdk::{pda, token};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Signer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_one_worker_serves_two_keepers_each_on_its_own_gpu() {
    let ip = crate::in_process::InProcess::start().await;
    let (client, sys) = (&ip.client, &ip.sys);
    let config = client.config().await.unwrap();
    let user = &sys.user;
    let user_token = token::ata(&user.pubkey(), &config.mint);
    let provider = pda::provider(&sys.provider_wallet);
    let price = client
        .provider(&sys.provider_wallet)
        .await
        .unwrap()
        .gpu
        .price_per_gpu_second;
    let open = |nonce: u64| {
        let client = &client;
        async move {
            let args = LeaseOpenArgs {
                nonce,
                gpus: 1,
                duration: 3_600,
                max_price_per_gpu_second: price,
            };
            let ixn = ix::lease_open(
                &user.pubkey(),
                &user.pubkey(),
                &user_token,
                &provider,
                &config.mint,
                args,
            );
            client.send(&[ixn], user, &[]).await.unwrap();
            let lease = pda::lease(&user.pubkey(), nonce);
            client.draw_committee(user, &lease).await.unwrap();
            (lease, client.lease(&lease).await.unwrap())
        }
    };
    // Two 1-GPU leases served by different keepers (the draw decides: reopen until it does).
    let (first, l1) = open(1).await;
    let mut second = None;
    for nonce in 2..40 {
        let (lease, l) = open(nonce).await;
        if l.keeper != l1.keeper {
            second = Some((lease, l));
            break;
        }
        let parties = LeaseParties {
            lease,
            provider,
            keeper: l.keeper,
            mint: config.mint,
            treasury: config.treasury,
        };
        let close = ix::lease_close(&user.pubkey(), &parties, &user_token, &user.pubkey());
        client.send(&[close], user, &[]).await.unwrap();
    }
    let (second, l2) = second.expect("a lease drawn to another keeper");

    let keeper_of = |account: &Pubkey| {
        let i = sys
            .keeper_wallets
            .iter()
            .position(|w| pda::keeper(w) == *account)
            .expect("one of the localnet's keepers");
        sys.keepers[i].core().clone()
    };
    // Each lease's cluster as its keeper sees it: one worker, one GPU. The plan moves GPUs
    // between keepers as leases open and close above, so wait for it to settle.
    let sees = |lease: Pubkey, keeper: &Pubkey| {
        let core = keeper_of(keeper);
        let id: Arc<str> = lease.to_string().into();
        match core.cluster(&id) {
            Ok(c) if c.gpus_ready >= 1 && c.workers.len() == 1 && c.workers[0].gpus.len() == 1 => {
                Some((c.workers[0].worker_id.clone(), c.workers[0].gpus[0].index))
            }
            _ => None,
        }
    };
    let mut seen = Vec::new();
    for _ in 0..600 {
        seen = [(first, &l1), (second, &l2)]
            .into_iter()
            .filter_map(|(lease, l)| sees(lease, &l.keeper))
            .collect();
        if seen.len() == 2 && seen[0].1 != seen[1].1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 2, "both clusters ready in 60 s: {seen:?}");
    // The same machine (the plan lays the oldest leases over the first worker's GPUs), two
    // different GPUs.
    assert_eq!(seen[0].0, seen[1].0, "{seen:?}");
    assert_ne!(seen[0].1, seen[1].1, "{seen:?}");
    // The third keeper sits on both leases' committees and serves neither: the machine keeps a
    // standby connection to it (liveness only), and it gives that connection no work.
    let third = sys
        .keeper_wallets
        .iter()
        .map(gpunet_sdk::pda::keeper)
        .find(|k| *k != l1.keeper && *k != l2.keeper)
        .expect("a third keeper");
    assert!(l1.in_committee(&third) && l2.in_committee(&third));
    let standby = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("gpunet_keeper_workers_standby "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = keeper_of(&third).metrics.render();
        if standby(&metrics) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(standby(&metrics) >= 1, "{metrics}");
    assert!(
        metrics.contains("\ngpunet_keeper_workers_connected 0"),
        "{metrics}"
    );

    // A task asking for a GPU sees only its lease's.
    let key = SigningKey::from_bytes(user.secret_bytes());
    for ((lease, l), (_, gpu)) in [(first, &l1), (second, &l2)].into_iter().zip(&seen) {
        let endpoint = client
            .fetch::<gpunet_sdk::Keeper>("keeper", &l.keeper)
            .await
            .unwrap()
            .endpoint;
        let c = Client::connect(&endpoint, &lease.to_string(), &key)
            .await
            .unwrap();
        let mut t = spec::process(&["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"]);
        t.resources = Some(pb::Resources {
            milli_cpus: 100,
            gpus: 1,
            ..Default::default()
        });
        let ids = c.submit(vec![t]).await.unwrap();
        let out = c.get(ids[0], 0, Duration::from_secs(60)).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.data).trim(), gpu.to_string());
    }

    ip.stop().await;
}
