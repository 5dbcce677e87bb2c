//! Slashing with the committee, end to end: three chain-mode keepers on their own loopback
//! ports (each publishing its endpoint on chain, each serving the keeper-to-keeper co-signing
//! service), a real worker over gRPC, the localnet's program and SPL Token.
//!
//! - Of a 2-GPU lease served by two workers, one skips its proof work and fails its proof; the
//!   serving keeper posts the period `Fail` and slashes the provider for that worker's GPU with
//!   a co-signature gathered from another member; the user is compensated, the provider jailed,
//!   tokens neither created nor lost, and the lease goes on with the healthy worker's GPU: its
//!   next period passes and pays exactly one GPU's price. Alone, the keeper cannot slash; a
//!   member asked to co-sign evidence that does not hold refuses, and so does one asked to sign
//!   a message that is not the slash.
//! - Of a 2-GPU lease whose provider's two workers owe it one GPU each, one falls silent: once
//!   a period fails and the grace period has passed on the chain's clock, the serving keeper
//!   slashes the provider for that worker's GPU with a member that has not heard from it
//!   either; a member the healthy worker keeps a standby connection to refuses to call that
//!   one silent, and none co-signs before the grace period has passed.
//! - A keeper that posts a checkpoint on a transcript replayed from an earlier period is found
//!   out by another member's audit and slashed by a quorum of the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gpunet::instructions::LeaseCheckpointArgs;
use gpunet::state::{LeaseStatus, ProviderStatus, Verdict};
use gpunet_keeper::chain::{
    Auditor, ChainDirectory, Checkpointer, Committee, PeerSvc, Posted, WatchConfig, Watcher,
};
use gpunet_keeper::{KeeperConfig, KeeperHandle};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::task::{keys, pb};
use gpunet_sdk::{pda, token};
use gpunet_worker::shirk::ShirkingProof;
use gpunet_worker::{GpunetProof, ProofExecutor};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use tokio_util::sync::CancellationToken;

use crate::keeper::{Scene, scene, signing_key};

/// A keeper of the scene running in chain mode with its committee duties.
pub(crate) struct Running {
    pub(crate) h: KeeperHandle,
    pub(crate) watcher: Watcher,
    pub(crate) dir: Arc<ChainDirectory>,
    committee: Arc<Committee>,
    pub(crate) wallet: Keypair,
    pub(crate) url: String,
}

pub(crate) async fn run_keeper(s: &Scene, i: usize, cancel: &CancellationToken) -> Running {
    let wallet = s.keepers[i].insecure_clone();
    let rpc = s.n.net.rpc_url().to_string();
    let dir = Arc::new(ChainDirectory::new(pda::keeper(&wallet.pubkey())));
    let watcher = Watcher::new(
        &WatchConfig {
            rpc_url: rpc.clone(),
            ws_url: Some(s.n.net.ws_url().to_string()),
            reconcile_every: Duration::from_millis(500),
        },
        dir.clone(),
    );
    watcher.reconcile().await.unwrap();
    let file = s.tmp.path().join(format!("keeper{i}.json"));
    std::fs::write(&file, keys::keypair_to_json(&signing_key(&wallet))).unwrap();
    let cfg = KeeperConfig {
        listen: format!("127.0.0.1:{}", s.ports[i]),
        metrics_listen: String::new(),
        db_path: String::new(),
        keeper_key: Some(file.display().to_string()),
        ..KeeperConfig::default()
    };
    let (peer, slot) = PeerSvc::new();
    let h = gpunet_keeper::start_with(cfg, dir.clone(), dir.clone(), peer.routes(), cancel.clone())
        .await
        .expect("keeper starts");
    h.prover().set_anchor(dir.clone());
    h.core().liveness.set_clock(dir.clone());
    let committee = Arc::new(Committee::new(
        &rpc,
        wallet.insecure_clone(),
        Duration::from_secs(600),
        h.core().metrics.clone(),
        h.core().liveness.clone(),
    ));
    assert!(slot.set(committee.clone()).is_ok());
    Running {
        h,
        watcher,
        dir,
        committee,
        wallet,
        url: s.urls[i].clone(),
    }
}

impl Running {
    pub(crate) fn checkpointer(&self, s: &Scene) -> Checkpointer {
        Checkpointer::new(
            s.n.net.rpc_url(),
            self.wallet.insecure_clone(),
            self.dir.clone(),
            self.h.prover().clone(),
            self.h.core().clone(),
        )
        .with_committee(self.committee.clone())
    }
}

/// Starts all the scene's keepers; returns them with the index of the lease's keeper.
async fn run_all(s: &Scene, cancel: &CancellationToken) -> (Vec<Running>, usize) {
    let mut all = Vec::new();
    for i in 0..s.keepers.len() {
        all.push(run_keeper(s, i, cancel).await);
    }
    let l = s.n.client.lease(&s.lease).await.unwrap();
    let serving = all
        .iter()
        .position(|r| pda::keeper(&r.wallet.pubkey()) == l.keeper)
        .expect("the lease's keeper is one of the scene's");
    (all, serving)
}

fn worker_with(
    url: &str,
    provider: &Pubkey,
    key: &Keypair,
    dir: &std::path::Path,
    proof: Arc<dyn ProofExecutor>,
) -> gpunet_worker::WorkerHandle {
    gpunet_worker::spawn_with(crate::keeper::worker_config(url, provider, key, dir), proof)
}

/// Waits until the keeper at `r` has a worker in the lease's cluster.
async fn cluster_ready(r: &Running, lease: &Pubkey) {
    cluster_has(r, lease, 1).await
}

/// Waits until the keeper at `r` has `workers` workers in the lease's cluster.
async fn cluster_has(r: &Running, lease: &Pubkey, workers: usize) {
    let id: Arc<str> = lease.to_string().into();
    for _ in 0..400 {
        if r.h
            .core()
            .cluster(&id)
            .is_ok_and(|c| c.workers.len() >= workers)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{workers} workers did not join the lease's cluster in 20 s");
}

async fn cosign_direct(
    url: &str,
    req: pb::CoSignRequest,
) -> Result<pb::CoSignReply, tonic::Status> {
    let mut c = pb::peer_service_client::PeerServiceClient::connect(url.to_string())
        .await
        .unwrap();
    c.co_sign(req).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_shirking_worker_is_slashed_by_two_keepers_and_the_lease_goes_on_without_it() {
    let s = scene(3).await;
    let cancel = CancellationToken::new();
    let (keepers, serving) = run_all(&s, &cancel).await;
    let k = &keepers[serving];
    let cheat = Arc::new(AtomicBool::new(false));
    // Two workers of one GPU each serve the 2-GPU lease; the first will cheat.
    let one_gpu = |key: &Keypair, dir: &str| {
        let d = s.tmp.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let mut c = crate::keeper::worker_config(&k.url, &s.provider, key, &d);
        c.declared_gpus.as_mut().unwrap().count = 1;
        c
    };
    let w = gpunet_worker::spawn_with(
        one_gpu(&s.wkey, "shirker"),
        Arc::new(ShirkingProof {
            shirk: cheat.clone(),
        }),
    );
    let healthy = gpunet_worker::spawn_with(one_gpu(&s.wkey2, "honest"), Arc::new(GpunetProof));
    cluster_has(k, &s.lease, 2).await;
    let checkpointer = k.checkpointer(&s);

    // An honest first period is paid (so the user has paid something to be compensated for).
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
    assert!(l1.paid_provider > 0);

    // From now on the worker skips the work.
    cheat.store(true, Ordering::SeqCst);
    let config = s.n.client.config().await.unwrap();
    let user_token = token::ata(&s.user.pubkey(), &config.mint);
    let provider_before =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap();
    let (user_before, treasury_before) = (
        s.n.balance(&user_token).await,
        s.n.balance(&s.n.treasury).await,
    );
    let vault = pda::provider_vault(&s.provider);
    let vault_before = s.n.balance(&vault).await;
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();

    // The evidence: the shirker's failed proof, with its signed opening in the transcript.
    let id: Arc<str> = s.lease.to_string().into();
    let worker_id = s.wkey.pubkey().to_string();
    let failed =
        k.h.prover()
            .prove(&id, &worker_id, Default::default())
            .await
            .unwrap();
    assert!(!failed.ok, "the shirker passed: {failed:?}");
    assert_eq!(failed.rejection, "TileMismatch", "{failed:?}");

    // Alone, the serving keeper cannot slash: the program wants two committee signatures.
    let parties = LeaseParties {
        lease: s.lease,
        provider: s.provider,
        keeper: l1.keeper,
        mint: config.mint,
        treasury: s.n.treasury,
    };
    let alone = ix::provider_slash(&parties, &user_token, &[k.wallet.pubkey()], [7; 32], 1);
    let err = s.n.client.send(&[alone], &k.wallet, &[]).await.unwrap_err();
    assert!(err.to_string().contains("SlashQuorumNotMet"), "{err}");

    // Another member refuses what does not hold: a passed proof as evidence, a doctored
    // transcript (the worker's signature breaks), and the right evidence with a message that
    // is not the slash.
    let other = keepers.iter().find(|r| r.url != k.url).unwrap();
    let honest = checkpointer_transcript(&k.url, &s.lease, 1).await;
    let mut doctored = failed.clone();
    let mut bytes = doctored.transcript.to_vec();
    let n = bytes.len();
    bytes[n - 70] ^= 1; // inside the opening's tiles
    doctored.transcript = bytes.into();
    let blockhash = s.n.client.rpc().get_latest_blockhash().await.unwrap();
    let good_ix = ix::provider_slash(
        &parties,
        &user_token,
        &[k.wallet.pubkey(), other.wallet.pubkey()],
        gpunet_proof::checkpoint_digest(&[gpunet_proof::Transcript::decode(&failed.transcript)
            .unwrap()
            .digest()]),
        1,
    );
    let transfer = solana_system_interface::instruction::transfer(
        &other.wallet.pubkey(),
        &k.wallet.pubkey(),
        1_000_000,
    );
    let msg = |ixs: &[solana_sdk::instruction::Instruction]| {
        gpunet_sdk::cosign::message(ixs, &k.wallet.pubkey(), blockhash).serialize()
    };
    let ask = |proofs: Vec<pb::ProofVerdict>, message: Vec<u8>| pb::CoSignRequest {
        lease_id: s.lease.to_string(),
        evidence: Some(pb::co_sign_request::Evidence::Provider(pb::ProviderFault {
            proofs,
        })),
        message: message.into(),
    };
    for (what, req) in [
        (
            "a passed proof",
            ask(honest, msg(std::slice::from_ref(&good_ix))),
        ),
        (
            "a doctored transcript",
            ask(vec![doctored], msg(std::slice::from_ref(&good_ix))),
        ),
        (
            "a transfer beside the slash",
            ask(vec![failed.clone()], msg(&[good_ix.clone(), transfer])),
        ),
    ] {
        let refused = cosign_direct(&other.url, req).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{what}: {refused:?}"
        );
    }
    assert_eq!(
        s.n.client.lease(&s.lease).await.unwrap().status,
        LeaseStatus::Active
    );

    // The checkpointer proves the due period: the shirker fails, the period is posted Fail
    // and the provider slashed for the shirker's GPU with a second member's signature.
    let posted = checkpointer.checkpoint(&s.lease).await.unwrap();
    let Posted::Slashed {
        sequence,
        gpus_left,
        ..
    } = posted
    else {
        panic!("not slashed: {posted:?}");
    };
    assert_eq!((sequence, gpus_left), (2, 1));
    let l = s.n.client.lease(&s.lease).await.unwrap();
    assert_eq!(l.status, LeaseStatus::Active, "the lease goes on");
    assert_eq!(l.gpus, 1);
    assert_eq!(l.last_sequence, 2);
    assert_eq!(
        l.paid_provider, l1.paid_provider,
        "the failed period is not paid"
    );
    let p =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap();
    assert_eq!(p.status, ProviderStatus::Jailed);
    assert_eq!(p.gpus_leased, provider_before.gpus_leased - 1);
    let slashed = provider_before.staked - p.staked;
    // One GPU of two: half the stake the lease locked is the slashed GPU's, and
    // slash_fraction_bps = 5,000 takes half of that.
    let gpu_stake = l1.stake_locked - l1.stake_locked / 2;
    assert_eq!(slashed, gpu_stake / 2);
    assert_eq!(l.stake_locked, l1.stake_locked / 2);
    assert_eq!(p.locked, provider_before.locked - gpu_stake);
    let to_user = s.n.balance(&user_token).await - user_before;
    let to_treasury = s.n.balance(&s.n.treasury).await - treasury_before;
    assert!(to_user > 0, "the user is compensated");
    assert_eq!(to_user, l.compensation);
    assert!(to_user <= l.paid_provider + l.paid_protocol + l.paid_keeper);
    assert_eq!(to_user + to_treasury, slashed, "no token created or lost");
    assert_eq!(vault_before - s.n.balance(&vault).await, slashed);
    // Exactly one other member signed.
    let cosigned: Vec<String> = keepers
        .iter()
        .map(|r| r.h.core().metrics.render())
        .filter(|m| m.contains("slashes_cosigned_total{kind=\"provider\"} 1"))
        .collect();
    assert_eq!(cosigned.len(), 1);

    // The lease goes on with the healthy worker alone: the shirker left its cluster, and the
    // next period passes and pays exactly one GPU's price for its time.
    let c = k.h.core().cluster(&id).unwrap();
    assert_eq!(c.gpus_requested, 1);
    let members: Vec<String> = c.workers.iter().map(|w| w.worker_id.clone()).collect();
    assert_eq!(members, vec![s.wkey2.pubkey().to_string()]);
    let provider_token = token::ata(&provider_before.authority, &config.mint);
    let provider_tokens = s.n.balance(&provider_token).await;
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert_eq!(
        checkpointer.checkpoint(&s.lease).await.unwrap(),
        Posted::Posted {
            sequence: 3,
            verdict: Verdict::Pass
        }
    );
    let l3 = s.n.client.lease(&s.lease).await.unwrap();
    let gross = |l: &gpunet::state::Lease| l.paid_provider + l.paid_protocol + l.paid_keeper;
    assert_eq!(
        gross(&l3) - gross(&l),
        l.price_per_gpu_second * (l3.paid_until - l.paid_until) as u64,
        "one GPU's price for the period"
    );
    assert_eq!(
        s.n.balance(&provider_token).await - provider_tokens,
        l3.paid_provider - l.paid_provider
    );

    cancel.cancel();
    for w in [w, healthy] {
        w.cancel.cancel();
        let _ = w.join().await;
    }
    for r in keepers {
        r.h.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_worker_silent_past_the_grace_period_is_slashed_and_the_lease_goes_on() {
    let s = scene(3).await;
    let cancel = CancellationToken::new();
    // A provider of 2 GPUs with two listed workers: the layout gives each one GPU of the
    // 2-GPU lease (gpunet_sdk::plan).
    let (a, b) = (Keypair::new(), Keypair::new());
    let (pw, _) = crate::flows::register_provider_with_workers(
        &s.n,
        "eu-west",
        crate::flows::offer(gpunet::state::GpuClass::H100, 2, 10),
        4_000 * crate::harness::TOKEN,
        vec![a.pubkey(), b.pubkey()],
    )
    .await;
    let provider = pda::provider(&pw.pubkey());
    let args = gpunet::instructions::LeaseOpenArgs {
        nonce: 2,
        gpus: 2,
        duration: 7_200,
        max_price_per_gpu_second: 10,
    };
    let open = ix::lease_open(
        &s.user.pubkey(),
        &s.user.pubkey(),
        &s.user_ata,
        &provider,
        &s.n.mint,
        args,
    );
    s.n.client.send(&[open], &s.user, &[]).await.unwrap();
    let lease = pda::lease(&s.user.pubkey(), 2);
    s.n.client.draw_committee(&s.user, &lease).await.unwrap();
    let l0 = s.n.client.lease(&lease).await.unwrap();
    let mut keepers = Vec::new();
    for i in 0..s.keepers.len() {
        keepers.push(run_keeper(&s, i, &cancel).await);
    }
    let k = keepers
        .iter()
        .find(|r| pda::keeper(&r.wallet.pubkey()) == l0.keeper)
        .unwrap();
    let others: Vec<&Running> = keepers.iter().filter(|r| r.url != k.url).collect();
    let one_gpu = |url: &str, key: &Keypair, dir: &str| {
        let d = s.tmp.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let mut c = crate::keeper::worker_config(url, &provider, key, &d);
        c.declared_gpus.as_mut().unwrap().count = 1;
        c
    };
    let healthy = gpunet_worker::spawn(one_gpu(&k.url, &a, "a"));
    let silent = gpunet_worker::spawn(one_gpu(&k.url, &b, "b"));
    // The healthy worker stands by for the other members (as `gpunet worker run` does).
    let standby: Vec<gpunet_worker::WorkerHandle> = others
        .iter()
        .map(|r| {
            let mut c = one_gpu(&r.url, &a, "a-standby");
            c.standby = true;
            gpunet_worker::spawn(c)
        })
        .collect();
    cluster_has(k, &lease, 2).await;
    for r in &others {
        for _ in 0..200 {
            if r.h.core().metrics.render().contains("workers_standby 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(r.h.core().metrics.render().contains("workers_standby 1"));
        assert!(r.h.core().metrics.render().contains("workers_connected 0"));
    }
    let checkpointer = k.checkpointer(&s);
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert_eq!(
        checkpointer.checkpoint(&lease).await.unwrap(),
        Posted::Posted {
            sequence: 1,
            verdict: Verdict::Pass
        }
    );

    // Worker b falls silent: its process is gone.
    silent.cancel.cancel();
    let _ = silent.join().await;
    cluster_has_exactly(k, &lease, 1).await;
    // Half a grace period past the interval, the period is judged Fail (a GPU missing); b
    // has been silent for less than the grace period: no slash yet.
    let grace = l0.terms.grace_period;
    s.n.client.time_travel_by(301 + grace / 2).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert_eq!(
        checkpointer.checkpoint(&lease).await.unwrap(),
        Posted::Posted {
            sequence: 2,
            verdict: Verdict::Fail
        }
    );
    let id = lease.to_string();
    assert!(k.h.core().checkpoint(&id, 2).unwrap().slash.is_empty());
    let config = s.n.client.config().await.unwrap();
    let user_token = token::ata(&s.user.pubkey(), &config.mint);
    let parties = LeaseParties {
        lease,
        provider,
        keeper: l0.keeper,
        mint: config.mint,
        treasury: s.n.treasury,
    };
    let blockhash = s.n.client.rpc().get_latest_blockhash().await.unwrap();
    let any_slash = ix::provider_slash(
        &parties,
        &user_token,
        &[k.wallet.pubkey(), others[0].wallet.pubkey()],
        [9; 32],
        1,
    );
    let ask = |workers: Vec<String>| pb::CoSignRequest {
        lease_id: lease.to_string(),
        evidence: Some(pb::co_sign_request::Evidence::Silent(pb::SilentWorkers {
            workers,
        })),
        message: gpunet_sdk::cosign::message(
            std::slice::from_ref(&any_slash),
            &k.wallet.pubkey(),
            blockhash,
        )
        .serialize()
        .into(),
    };
    let early = cosign_direct(&others[0].url, ask(vec![b.pubkey().to_string()]))
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition, "{early:?}");
    assert!(early.message().contains("grace period"), "{early:?}");
    assert_eq!(checkpointer.resume_slash(&lease, 2).await, None, "not yet");

    // Past the grace period on the chain's clock.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.n.client.time_travel_by(grace / 2 + 60).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    // The healthy worker, standing by for every other member, is alive to each of them.
    for r in &others {
        let alive = cosign_direct(&r.url, ask(vec![a.pubkey().to_string()]))
            .await
            .unwrap_err();
        assert_eq!(alive.code(), tonic::Code::FailedPrecondition, "{alive:?}");
        assert!(alive.message().contains("alive"), "{alive:?}");
    }
    let provider_before =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &provider)
            .await
            .unwrap();
    let (user_before, treasury_before) = (
        s.n.balance(&user_token).await,
        s.n.balance(&s.n.treasury).await,
    );
    let vault = pda::provider_vault(&provider);
    let vault_before = s.n.balance(&vault).await;
    let l1 = s.n.client.lease(&lease).await.unwrap();
    assert_eq!(checkpointer.resume_slash(&lease, 2).await, Some(1));
    let l = s.n.client.lease(&lease).await.unwrap();
    assert_eq!(l.status, LeaseStatus::Active, "the lease goes on");
    assert_eq!(l.gpus, 1, "without the silent worker's GPU");
    let record = k.h.core().checkpoint(&id, 2).unwrap();
    assert!(record.slash.starts_with("sent "), "{record:?}");
    let p =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &provider)
            .await
            .unwrap();
    assert_eq!(p.status, ProviderStatus::Jailed);
    let slashed = provider_before.staked - p.staked;
    assert!(slashed > 0);
    assert_eq!(l.stake_locked, l1.stake_locked / 2);
    let to_user = s.n.balance(&user_token).await - user_before;
    let to_treasury = s.n.balance(&s.n.treasury).await - treasury_before;
    assert_eq!(to_user, l.compensation - l1.compensation);
    assert_eq!(to_user + to_treasury, slashed, "no token created or lost");
    assert_eq!(vault_before - s.n.balance(&vault).await, slashed);
    let silent_cosigned = keepers
        .iter()
        .filter(|r| {
            r.h.core()
                .metrics
                .render()
                .contains("slashes_cosigned_total{kind=\"silent\"} 1")
        })
        .count();
    assert_eq!(silent_cosigned, 1, "exactly one other member signed");
    assert_eq!(checkpointer.resume_slash(&lease, 2).await, None, "once");

    // The lease goes on with worker a: its next period passes and pays one GPU's price.
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert_eq!(
        checkpointer.checkpoint(&lease).await.unwrap(),
        Posted::Posted {
            sequence: 3,
            verdict: Verdict::Pass
        }
    );
    let l3 = s.n.client.lease(&lease).await.unwrap();
    let gross = |l: &gpunet::state::Lease| l.paid_provider + l.paid_protocol + l.paid_keeper;
    assert_eq!(
        gross(&l3) - gross(&l),
        l.price_per_gpu_second * (l3.paid_until - l.paid_until) as u64
    );

    cancel.cancel();
    for w in standby.into_iter().chain([healthy]) {
        w.cancel.cancel();
        let _ = w.join().await;
    }
    for r in keepers {
        r.h.wait().await.unwrap();
    }
}

/// Waits until the keeper at `r` has exactly `workers` workers in the lease's cluster.
async fn cluster_has_exactly(r: &Running, lease: &Pubkey, workers: usize) {
    let id: Arc<str> = lease.to_string().into();
    for _ in 0..400 {
        if r.h
            .core()
            .cluster(&id)
            .is_ok_and(|c| c.workers.len() == workers)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the lease's cluster did not come to {workers} workers in 20 s");
}

/// The proofs of checkpoint `sequence` as its keeper serves them.
async fn checkpointer_transcript(
    url: &str,
    lease: &Pubkey,
    sequence: u64,
) -> Vec<pb::ProofVerdict> {
    gpunet_sdk::task::transcript(url, &lease.to_string(), sequence)
        .await
        .unwrap()
        .proofs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_keeper_posting_a_replayed_transcript_is_slashed_by_the_others() {
    let s = scene(3).await;
    let cancel = CancellationToken::new();
    let (keepers, serving) = run_all(&s, &cancel).await;
    let k = &keepers[serving];
    let w = worker_with(
        &k.url,
        &s.provider,
        &s.wkey,
        s.tmp.path(),
        Arc::new(GpunetProof),
    );
    cluster_ready(k, &s.lease).await;
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    assert!(matches!(
        k.checkpointer(&s).checkpoint(&s.lease).await.unwrap(),
        Posted::Posted { sequence: 1, .. }
    ));
    let auditors: Vec<Auditor> = keepers
        .iter()
        .filter(|r| r.url != k.url)
        .map(|r| {
            Auditor::new(
                s.n.net.rpc_url(),
                r.committee.clone(),
                1.0,
                r.h.core().metrics.clone(),
            )
        })
        .collect();
    // An honest checkpoint holds up.
    assert!(auditors[0].tick().await.unwrap().is_empty());

    // The next period the keeper proves nothing: it posts Pass on the first period's
    // transcript, relabelled.
    s.n.client.time_travel_by(301).await.unwrap();
    let l = s.n.client.lease(&s.lease).await.unwrap();
    let now = s.n.client.chain_time().await.unwrap();
    let now = gpunet_keeper::chain::checkpoint::due(&l, now).expect("period 2 is due");
    let mut replay = gpunet_sdk::task::transcript(&k.url, &s.lease.to_string(), 1)
        .await
        .unwrap();
    replay.sequence = 2;
    replay.period_start = l.paid_until;
    replay.period_end = now;
    k.h.core().record_checkpoint(replay.clone()).await.unwrap();
    let config = s.n.client.config().await.unwrap();
    let provider =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap();
    let parties = LeaseParties {
        lease: s.lease,
        provider: s.provider,
        keeper: l.keeper,
        mint: config.mint,
        treasury: s.n.treasury,
    };
    let lie = ix::lease_checkpoint(
        &k.wallet.pubkey(),
        &parties,
        &token::ata(&provider.authority, &config.mint),
        &token::ata(&k.wallet.pubkey(), &config.mint),
        LeaseCheckpointArgs {
            sequence: 2,
            period_start: l.paid_until,
            period_end: now,
            proof_digest: replay.digest.as_ref().try_into().unwrap(),
            verdict: Verdict::Pass,
            score: replay.score,
        },
    );
    s.n.client.send(&[lie], &k.wallet, &[]).await.unwrap();
    let accused = pda::keeper(&k.wallet.pubkey());
    let bond_before =
        s.n.client
            .fetch::<gpunet::state::Keeper>("keeper", &accused)
            .await
            .unwrap()
            .bond;
    let user_token = token::ata(&s.user.pubkey(), &config.mint);
    let user_before = s.n.balance(&user_token).await;

    // Another member's audit finds the replay and slashes with the third.
    let found = auditors[0].tick().await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].sequence, found[0].keeper, found[0].slashed),
        (2, accused, true)
    );
    let after =
        s.n.client
            .fetch::<gpunet::state::Keeper>("keeper", &accused)
            .await
            .unwrap();
    assert_eq!(
        after.bond,
        bond_before / 2,
        "keeper_slash_fraction_bps = 5,000"
    );
    assert_eq!(after.status, gpunet::state::KeeperStatus::Draining);
    let l = s.n.client.lease(&s.lease).await.unwrap();
    assert_eq!(l.judged_sequence, 2);
    assert_eq!(s.n.balance(&user_token).await - user_before, l.compensation);
    assert!(l.compensation > 0);
    // Judged once: the third member's audit finds nothing left to do.
    assert!(auditors[1].tick().await.unwrap().is_empty());

    cancel.cancel();
    w.cancel.cancel();
    let _ = w.join().await;
    for r in keepers {
        r.h.wait().await.unwrap();
    }
}

/// A keeper that stops between posting a failed period and slashing for it (a restart, a
/// co-signer out of reach) sends the slash later: the checkpoint's record says a slash is still
/// to be sent, the next pass sends it while the evidence is recent, and records it so it is
/// never sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_slash_not_sent_with_its_checkpoint_is_sent_later_once() {
    let s = scene(3).await;
    let cancel = CancellationToken::new();
    let (keepers, serving) = run_all(&s, &cancel).await;
    let k = &keepers[serving];
    let w = worker_with(
        &k.url,
        &s.provider,
        &s.wkey,
        s.tmp.path(),
        Arc::new(ShirkingProof {
            shirk: Arc::new(AtomicBool::new(true)),
        }),
    );
    cluster_ready(k, &s.lease).await;
    s.n.client.time_travel_by(301).await.unwrap();
    k.watcher.reconcile().await.unwrap();
    // Posted without its slash (this checkpointer has no committee, as a keeper that died
    // right after the checkpoint landed).
    let alone = Checkpointer::new(
        s.n.net.rpc_url(),
        k.wallet.insecure_clone(),
        k.dir.clone(),
        k.h.prover().clone(),
        k.h.core().clone(),
    );
    assert_eq!(
        alone.checkpoint(&s.lease).await.unwrap(),
        Posted::Posted {
            sequence: 1,
            verdict: Verdict::Fail
        }
    );
    let id = s.lease.to_string();
    let record = k.h.core().checkpoint(&id, 1).unwrap();
    assert!(record.slash.is_empty(), "still to be sent: {record:?}");
    assert_eq!(
        s.n.client.lease(&s.lease).await.unwrap().status,
        LeaseStatus::Active
    );

    // The keeper's checkpointer, with its committee, finds it and sends it, once.
    let checkpointer = k.checkpointer(&s);
    assert_eq!(checkpointer.resume_slash(&s.lease, 1).await, Some(0));
    let l = s.n.client.lease(&s.lease).await.unwrap();
    assert_eq!(
        l.status,
        LeaseStatus::Ended,
        "the only worker failed: all GPUs"
    );
    let p =
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap();
    assert_eq!(p.status, ProviderStatus::Jailed);
    let record = k.h.core().checkpoint(&id, 1).unwrap();
    assert!(record.slash.starts_with("sent "), "{record:?}");
    assert_eq!(checkpointer.resume_slash(&s.lease, 1).await, None);
    assert_eq!(
        s.n.client
            .fetch::<gpunet::state::Provider>("provider", &s.provider)
            .await
            .unwrap()
            .slashed_total,
        p.slashed_total,
        "not slashed twice"
    );

    cancel.cancel();
    w.cancel.cancel();
    let _ = w.join().await;
    for r in keepers {
        r.h.wait().await.unwrap();
    }
}
