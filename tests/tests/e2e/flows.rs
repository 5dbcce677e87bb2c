//! A provider registers and stakes; a user opens, tops up and closes a lease; keepers
//! checkpoint; bad input gets its named error and changes nothing — all over JSON-RPC.

use gpunet::instructions::{LeaseCheckpointArgs, LeaseOpenArgs, ProviderRegisterArgs};
use gpunet::state::{GpuClass, GpuOffer, LeaseStatus, ProviderStatus, Verdict};
use gpunet_sdk::events::GpunetEvent;
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::{LeaseFilter, ProviderFilter, SdkError, pda};
use solana_sdk::signature::{Keypair, Signer};

use crate::harness::{Net, TOKEN};

pub(crate) fn offer(class: GpuClass, count: u16, price: u64) -> GpuOffer {
    GpuOffer {
        class,
        count,
        vram_gib: 80,
        price_per_gpu_second: price,
    }
}

async fn register_provider(
    n: &Net,
    region: &str,
    gpu: GpuOffer,
    stake: u64,
) -> (Keypair, solana_sdk::pubkey::Pubkey) {
    register_provider_with_workers(n, region, gpu, stake, vec![Keypair::new().pubkey()]).await
}

/// A provider listing `workers`, staked with `stake`; returns its wallet and token account.
pub(crate) async fn register_provider_with_workers(
    n: &Net,
    region: &str,
    gpu: GpuOffer,
    stake: u64,
    workers: Vec<solana_sdk::pubkey::Pubkey>,
) -> (Keypair, solana_sdk::pubkey::Pubkey) {
    let (w, ata) = n.wallet(stake).await;
    let args = ProviderRegisterArgs {
        region: region.into(),
        zone: "a".into(),
        endpoint: "grpc://127.0.0.1:7000".into(),
        gpu,
        workers,
    };
    n.client
        .send(
            &[ix::provider_register(&w.pubkey(), &n.mint, args)],
            &w,
            &[],
        )
        .await
        .expect("provider_register");
    if stake > 0 {
        n.client
            .send(
                &[ix::provider_stake(&w.pubkey(), &ata, &n.mint, stake)],
                &w,
                &[],
            )
            .await
            .expect("provider_stake");
    }
    (w, ata)
}

async fn register_keeper(n: &Net) -> (Keypair, solana_sdk::pubkey::Pubkey) {
    register_keeper_at(n, "http://127.0.0.1:7400").await
}

/// A bonded keeper publishing `endpoint`; returns its wallet and token account.
pub(crate) async fn register_keeper_at(
    n: &Net,
    endpoint: &str,
) -> (Keypair, solana_sdk::pubkey::Pubkey) {
    let bond = n.client.config().await.unwrap().params.keeper_bond;
    let (w, ata) = n.wallet(bond).await;
    n.client
        .send(
            &[ix::keeper_register(&w.pubkey(), &ata, &n.mint, endpoint)],
            &w,
            &[],
        )
        .await
        .expect("keeper_register");
    (w, ata)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_localnet_serves_standard_json_rpc_with_the_programs_loaded() {
    let n = Net::start().await;
    let rpc = n.client.rpc();
    let slot = rpc.get_slot().await.unwrap();
    let gpunet = rpc.get_account(&gpunet::ID).await.unwrap();
    assert!(gpunet.executable, "gpunet is loaded");
    for program in [
        gpunet_sdk::ix::TOKEN_PROGRAM_ID,
        solana_sdk::pubkey!("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"),
    ] {
        assert!(
            rpc.get_account(&program).await.unwrap().executable,
            "{program} loaded"
        );
    }
    // Slots advance on their own and the clock follows wall time.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(rpc.get_slot().await.unwrap() > slot);
    let chain = n.client.chain_time().await.unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (chain - wall).abs() <= 5,
        "chain clock {chain} vs wall clock {wall}"
    );
    // A validator's error codes: an unknown method is JSON-RPC's -32601.
    let res = rpc
        .send::<serde_json::Value>(
            solana_rpc_client_api::request::RpcRequest::Custom {
                method: "noSuchMethod",
            },
            serde_json::json!([]),
        )
        .await;
    let err = format!("{:?}", res.unwrap_err());
    assert!(err.contains("-32601"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_provider_registers_stakes_and_is_listed() {
    let n = Net::start().await;
    let stake = 4_000 * TOKEN;
    let (p, ata) = register_provider(&n, "eu-west", offer(GpuClass::H100, 4, 10), stake).await;
    register_provider(&n, "us-east", offer(GpuClass::A10, 2, 3), 200 * TOKEN).await;

    let acct = n.client.provider(&p.pubkey()).await.unwrap();
    assert_eq!(acct.staked, stake);
    assert_eq!(acct.status, ProviderStatus::Active);
    assert_eq!(n.balance(&ata).await, 0);
    assert_eq!(
        n.balance(&pda::provider_vault(&pda::provider(&p.pubkey())))
            .await,
        stake
    );

    let eu = n
        .client
        .providers(&ProviderFilter {
            region: Some("eu-west".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(eu.len(), 1);
    assert_eq!(eu[0].0, pda::provider(&p.pubkey()));
    let a10 = n
        .client
        .providers(&ProviderFilter {
            class: Some(GpuClass::A10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a10.len(), 1);
    let roomy = n
        .client
        .providers(&ProviderFilter {
            min_free_gpus: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(roomy.len(), 1);
    assert_eq!(
        n.client
            .providers(&ProviderFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_user_opens_tops_up_and_closes_a_lease() {
    let n = Net::start().await;
    let (k1, k1_ata) = register_keeper(&n).await;
    let (k2, k2_ata) = register_keeper(&n).await;
    let (p, p_ata) =
        register_provider(&n, "eu-west", offer(GpuClass::H100, 4, 10), 4_000 * TOKEN).await;
    let (user, user_ata) = n.wallet(1_000_000).await;
    let provider = pda::provider(&p.pubkey());

    // Open: 2 GPUs × 10/s × 600 s = 12,000 into escrow; the committee is drawn next.
    let sig = n
        .client
        .send(
            &[ix::lease_open(
                &user.pubkey(),
                &user.pubkey(),
                &user_ata,
                &provider,
                &n.mint,
                LeaseOpenArgs {
                    nonce: 1,
                    gpus: 2,
                    duration: 600,
                    max_price_per_gpu_second: 10,
                },
            )],
            &user,
            &[],
        )
        .await
        .unwrap();
    let lease = pda::lease(&user.pubkey(), 1);
    assert_eq!(
        n.client.lease(&lease).await.unwrap().status,
        LeaseStatus::Pending
    );
    // The committee comes from a slot hash after the open (the real SlotHashes sysvar of the
    // embedded chain); any payer may send the draw.
    n.client.draw_committee(&user, &lease).await.unwrap();
    let drawn = n.client.lease(&lease).await.unwrap();
    assert_eq!(drawn.status, LeaseStatus::Active);
    assert_eq!(
        drawn.committee().len(),
        2,
        "both keepers are on the committee"
    );
    let keeper = &drawn.keeper;
    assert_eq!(n.balance(&user_ata).await, 1_000_000 - 12_000);
    assert_eq!(n.balance(&pda::lease_vault(&lease)).await, 12_000);
    // The event survived native mode as an inner instruction.
    let events = n.client.events(&sig).await.unwrap();
    let opened = events
        .iter()
        .find_map(|e| match e {
            GpunetEvent::LeaseOpened(o) => Some(o.clone()),
            _ => None,
        })
        .expect("LeaseOpened event");
    assert_eq!(
        (opened.lease, opened.gpus, opened.deposit),
        (lease, 2, 12_000)
    );

    // Listings by user, provider and keeper.
    assert_eq!(
        n.client
            .leases(LeaseFilter::User(user.pubkey()))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        n.client
            .leases(LeaseFilter::Provider(provider))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        n.client
            .leases(LeaseFilter::Keeper(*keeper))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        n.client
            .leases(LeaseFilter::User(p.pubkey()))
            .await
            .unwrap()
            .len(),
        0
    );

    // A dApp tops up for its user.
    let (dapp, dapp_ata) = n.wallet(5_000).await;
    n.client
        .send(
            &[ix::lease_top_up(
                &dapp.pubkey(),
                &dapp_ata,
                &lease,
                &n.mint,
                4_000,
            )],
            &dapp,
            &[],
        )
        .await
        .unwrap();
    let l = n.client.lease(&lease).await.unwrap();
    assert_eq!(l.funded, 16_000);
    assert_eq!(l.funded_until().unwrap(), l.start + 800);

    // The keeper checkpoints 100 s once they have passed.
    let (kw, k_ata) = if *keeper == pda::keeper(&k1.pubkey()) {
        (&k1, k1_ata)
    } else {
        (&k2, k2_ata)
    };
    n.client.time_travel_by(100).await.unwrap();
    let parties = LeaseParties {
        lease,
        provider,
        keeper: *keeper,
        mint: n.mint,
        treasury: n.treasury,
    };
    n.client
        .send(
            &[ix::lease_checkpoint(
                &kw.pubkey(),
                &parties,
                &p_ata,
                &k_ata,
                LeaseCheckpointArgs {
                    sequence: 1,
                    period_start: l.start,
                    period_end: l.start + 100,
                    proof_digest: [1; 32],
                    verdict: Verdict::Pass,
                    score: 42,
                },
            )],
            kw,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n.balance(&p_ata).await, 2_000 * 93 / 100);
    assert_eq!(n.balance(&k_ata).await, 2_000 * 2 / 100);

    // The user closes: verified time only; the rest comes back; rent back to the user.
    n.client
        .send(
            &[ix::lease_close(
                &user.pubkey(),
                &parties,
                &user_ata,
                &user.pubkey(),
            )],
            &user,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        n.balance(&user_ata).await,
        1_000_000 - 12_000 + (16_000 - 2_000)
    );
    assert!(matches!(
        n.client.lease(&lease).await,
        Err(SdkError::NotFound { .. })
    ));
    let prov = n.client.provider(&p.pubkey()).await.unwrap();
    assert_eq!((prov.gpus_leased, prov.locked), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_bad_input_gets_its_named_error_and_changes_nothing() {
    let n = Net::start().await;
    register_keeper(&n).await;
    register_keeper(&n).await;
    let (p, p_ata) =
        register_provider(&n, "eu-west", offer(GpuClass::H100, 4, 10), 4_000 * TOKEN).await;
    let (user, user_ata) = n.wallet(50).await;
    let provider = pda::provider(&p.pubkey());

    // The program's own error, by name, although native mode drops its log lines.
    let open = |max_price: u64, duration: i64| {
        ix::lease_open(
            &user.pubkey(),
            &user.pubkey(),
            &user_ata,
            &provider,
            &n.mint,
            LeaseOpenArgs {
                nonce: 7,
                gpus: 1,
                duration,
                max_price_per_gpu_second: max_price,
            },
        )
    };
    match n.client.send(&[open(5, 60)], &user, &[]).await {
        Err(SdkError::Program { error, .. }) => {
            assert_eq!(error.name, "PriceAboveMax");
            assert!(error.message.contains("most the user agreed to pay"));
        }
        other => panic!("expected PriceAboveMax, got {other:?}"),
    }
    // Not enough tokens: the token program's refusal, named.
    match n.client.send(&[open(10, 60)], &user, &[]).await {
        Err(SdkError::Token { message, .. }) => assert_eq!(message, "insufficient funds"),
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    assert_eq!(n.balance(&user_ata).await, 50);
    assert!(matches!(
        n.client.lease(&pda::lease(&user.pubkey(), 7)).await,
        Err(SdkError::NotFound { .. })
    ));

    // Withdrawing before the unbonding period ends; then time travel 14 days and it works.
    n.client
        .send(&[ix::provider_unstake_request(&p.pubkey(), 1_000)], &p, &[])
        .await
        .unwrap();
    match n
        .client
        .send(
            &[ix::provider_withdraw(&p.pubkey(), &p_ata, &n.mint)],
            &p,
            &[],
        )
        .await
    {
        Err(SdkError::Program { error, .. }) => assert_eq!(error.name, "UnbondingNotFinished"),
        other => panic!("expected UnbondingNotFinished, got {other:?}"),
    }
    n.client.time_travel_by(14 * 24 * 3_600 + 5).await.unwrap();
    n.client
        .send(
            &[ix::provider_withdraw(&p.pubkey(), &p_ata, &n.mint)],
            &p,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n.balance(&p_ata).await, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_anchor_client_reads_and_writes_gpunet() {
    use anchor_client::{Client, Cluster};
    use std::rc::Rc;
    let n = Net::start().await;
    let (p, _) = register_provider(&n, "ap-south", offer(GpuClass::L40S, 2, 5), 0).await;
    // The provider's wallet pays and signs through anchor-client.
    let payer = Rc::new(p.insecure_clone());
    let url = n.net.rpc_url().to_string();
    let ws = n.net.ws_url().to_string();
    let client = Client::new(Cluster::Custom(url, ws), payer.clone());
    let program = client.program(gpunet::ID).unwrap();
    let acct: gpunet::state::Provider = program.account(pda::provider(&p.pubkey())).await.unwrap();
    assert_eq!(acct.gpu.class, GpuClass::L40S);
    let all: Vec<(_, gpunet::state::Provider)> = program.accounts(vec![]).await.unwrap();
    assert_eq!(all.len(), 1);
    // A write through anchor-client's request builder.
    let sig = program
        .request()
        .instruction(ix::provider_update(
            &p.pubkey(),
            gpunet::instructions::ProviderUpdateArgs {
                endpoint: Some("grpc://10.1.1.1:7000".into()),
                ..Default::default()
            },
        ))
        .send()
        .await
        .unwrap();
    assert!(
        n.client
            .events(&sig)
            .await
            .unwrap()
            .iter()
            .any(|e| matches!(e, GpunetEvent::ProviderUpdated(_)))
    );
    assert_eq!(
        n.client.provider(&p.pubkey()).await.unwrap().endpoint,
        "grpc://10.1.1.1:7000"
    );
}
