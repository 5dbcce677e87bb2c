//! The demo's path in-process (the localnet, the keepers and the workers in this test's
//! process): every party's balance change is explained by the lease's own history on chain —
//! its open, three checkpoints (pass, fail, pass), the slash of the cheating worker's GPUs, and
//! the close — and the provider, the lease and the keepers end as they should.

use gpunet_sdk::audit::lease_events;
use gpunet_sdk::events::GpunetEvent;
use gpunet_sdk::gpunet::state::{ProviderStatus, Verdict};
use gpunet_sdk::{SdkError, pda};
use solana_sdk::signature::Signer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_the_demo_path_in_process_every_balance_explained_by_the_lease_history() {
    let ip = crate::in_process::InProcess::start().await;
    let (client, admin, sys) = (&ip.client, &ip.admin, &ip.sys);
    let mut out = Vec::new();
    let d = super::run(client, &admin.pubkey(), sys, &mut out)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", String::from_utf8_lossy(&out)));
    let said = String::from_utf8_lossy(&out).to_string();

    // The lease's history, from its transactions (its account is closed).
    assert!(matches!(
        client.lease(&d.lease).await,
        Err(SdkError::NotFound { .. })
    ));
    let events: Vec<GpunetEvent> = lease_events(client, &d.lease)
        .await
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    let opened = events
        .iter()
        .find_map(|e| match e {
            GpunetEvent::LeaseOpened(o) => Some(o.clone()),
            _ => None,
        })
        .expect("LeaseOpened");
    let checkpoints: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            GpunetEvent::CheckpointPosted(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    let slashes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            GpunetEvent::ProviderSlashed(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let closed = events
        .iter()
        .find_map(|e| match e {
            GpunetEvent::LeaseClosed(c) => Some(c.clone()),
            _ => None,
        })
        .expect("LeaseClosed");
    let verdicts: Vec<Verdict> = checkpoints.iter().map(|c| c.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Fail, Verdict::Pass],
        "{said}"
    );
    assert_eq!(slashes.len(), 1, "{said}");
    let slash = &slashes[0];
    assert_eq!(
        (slash.gpus, slash.gpus_left),
        (2, 2),
        "one worker of two cheated"
    );
    // The failed period pays nothing; the last is paid for the 2 healthy GPUs only.
    assert_eq!(checkpoints[1].paid_provider, 0);
    let last = &checkpoints[2];
    assert_eq!(
        last.paid_provider + last.protocol_fee + last.keeper_fee,
        opened.price_per_gpu_second * 2 * (last.period_end - last.period_start) as u64
    );

    // Every balance change, from the history.
    let change = |name: &str| -> i128 {
        let i = d
            .accounts
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no account {name}"));
        d.after[i] as i128 - d.before[i] as i128
    };
    let sum = |f: &dyn Fn(&gpunet_sdk::gpunet::events::CheckpointPosted) -> u64| -> i128 {
        checkpoints.iter().map(|c| f(c) as i128).sum()
    };
    assert_eq!(
        change("user"),
        -(opened.deposit as i128) + closed.refunded as i128 + slash.to_user as i128
    );
    assert_eq!(change("lease escrow"), 0);
    assert_eq!(change("provider"), sum(&|c| c.paid_provider));
    assert_eq!(closed.paid_provider as i128, sum(&|c| c.paid_provider));
    assert_eq!(change("provider stake"), -(slash.slashed as i128));
    assert_eq!(slash.to_user + slash.to_treasury, slash.slashed);
    assert_eq!(
        change("treasury"),
        sum(&|c| c.protocol_fee) + slash.to_treasury as i128
    );
    for (i, wallet) in sys.keeper_wallets.iter().enumerate() {
        let account = pda::keeper(wallet);
        let fees: i128 = checkpoints
            .iter()
            .filter(|c| c.keeper == account)
            .map(|c| c.keeper_fee as i128)
            .sum();
        assert_eq!(change(&format!("keeper-{}", i + 1)), fees);
        assert_eq!(change(&format!("keeper-{} bond", i + 1)), 0);
    }
    assert_eq!(change("admin (mint authority)"), 0);
    assert_eq!(
        opened.deposit,
        closed.refunded + closed.paid_provider + closed.paid_protocol + closed.paid_keeper,
        "the escrow is spent exactly"
    );

    // The provider: jailed, nothing leased or locked any more, its stake less the slash.
    let p = client.provider(&sys.provider_wallet).await.unwrap();
    assert_eq!(p.status, ProviderStatus::Jailed);
    assert_eq!((p.gpus_leased, p.active_leases, p.locked), (0, 0, 0));
    assert_eq!(p.slashed_total, slash.slashed);

    ip.stop().await;
}
