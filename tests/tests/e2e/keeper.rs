//! The keeper in chain mode against the localnet: its directories come from the program's
//! accounts (ids are account addresses), a real worker joins over gRPC on loopback, the lease's
//! user runs a task, strangers are refused, a due period is proved and paid on chain exactly
//! once, and closing the lease on chain ends its cluster.

use std::sync::Arc;
use std::time::Duration;

use gpunet::instructions::LeaseOpenArgs;
use gpunet::state::{GpuClass, Verdict};
use gpunet_keeper::KeeperConfig;
use gpunet_keeper::chain::{
    ChainDirectory, Checkpointer, Ended, Posted, Reassigner, WatchConfig, Watcher,
};
use gpunet_keeper::explorer::{Explorer, Scope};
use gpunet_proof::Transcript;
use gpunet_sdk::audit::{AuditOutcome, Context, audit_lease, check};
use gpunet_sdk::ix::{self, LeaseParties};
use gpunet_sdk::pda;
use gpunet_sdk::task::{Client, Code, SigningKey, keys, pb, spec};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use tokio_util::sync::CancellationToken;

use crate::flows::{offer, register_keeper_at, register_provider_with_workers};
use crate::harness::{Net, TOKEN};

pub(crate) fn signing_key(k: &Keypair) -> SigningKey {
    SigningKey::from_bytes(k.secret_bytes())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A worker of `provider` declaring 2 GPUs (run on the CPU prover), keeper at `url`.
pub(crate) fn worker_config(
    url: &str,
    provider: &Pubkey,
    key: &Keypair,
    dir: &std::path::Path,
) -> gpunet_worker::WorkerConfig {
    let mut c = gpunet_worker::WorkerConfig::new(url, &provider.to_string(), signing_key(key));
    c.declared_gpus = Some(gpunet_worker::DeclaredGpus {
        count: 2,
        model: "cpu-declared".into(),
        memory_bytes: 80 << 30,
    });
    c.milli_cpus = 2000;
    c.work_dir = dir.to_path_buf();
    c
}

fn worker(
    url: &str,
    provider: &Pubkey,
    key: &Keypair,
    dir: &std::path::Path,
) -> gpunet_worker::WorkerHandle {
    gpunet_worker::spawn(worker_config(url, provider, key, dir))
}

async fn open_lease(n: &Net, user: &Keypair, user_ata: &Pubkey, provider: &Pubkey) -> Pubkey {
    let args = LeaseOpenArgs {
        nonce: 1,
        gpus: 2,
        duration: 600,
        max_price_per_gpu_second: 10,
    };
    n.client
        .send(
            &[ix::lease_open(
                &user.pubkey(),
                &user.pubkey(),
                user_ata,
                provider,
                &n.mint,
                args,
            )],
            user,
            &[],
        )
        .await
        .expect("lease_open");
    let lease = pda::lease(&user.pubkey(), 1);
    n.client.draw_committee(user, &lease).await.expect("draw");
    lease
}

/// A localnet with `keepers` keepers each publishing its own free loopback port as its
/// endpoint, a provider listing one worker key, and a user's 2-GPU lease on it, opened and
/// drawn. `port`/`url` are the first keeper's.
pub(crate) struct Scene {
    pub n: Net,
    pub tmp: tempfile::TempDir,
    pub port: u16,
    pub url: String,
    pub ports: Vec<u16>,
    pub urls: Vec<String>,
    pub keepers: Vec<Keypair>,
    pub wkey: Keypair,
    /// A second worker key the provider lists (not connected unless a test runs it).
    pub wkey2: Keypair,
    pub provider_ata: Pubkey,
    pub provider: Pubkey,
    pub user: Keypair,
    pub user_ata: Pubkey,
    pub lease: Pubkey,
}

pub(crate) async fn scene(keepers: usize) -> Scene {
    let n = Net::start().await;
    let ports: Vec<u16> = (0..keepers).map(|_| free_port()).collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut wallets = Vec::new();
    for url in &urls {
        wallets.push(register_keeper_at(&n, url).await.0);
    }
    let (wkey, wkey2) = (Keypair::new(), Keypair::new());
    let (pw, provider_ata) = register_provider_with_workers(
        &n,
        "eu-west",
        offer(GpuClass::H100, 4, 10),
        4_000 * TOKEN,
        vec![wkey.pubkey(), wkey2.pubkey()],
    )
    .await;
    let provider = pda::provider(&pw.pubkey());
    let (user, user_ata) = n.wallet(1_000_000).await;
    let lease = open_lease(&n, &user, &user_ata, &provider).await;
    Scene {
        n,
        tmp: tempfile::tempdir().unwrap(),
        port: ports[0],
        url: urls[0].clone(),
        ports,
        urls,
        keepers: wallets,
        wkey,
        wkey2,
        provider_ata,
        provider,
        user,
        user_ata,
        lease,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chain_keeper_serves_the_lease_its_account_is_named_on_and_ends_it_at_close() {
    let Scene {
        n,
        tmp,
        port,
        url,
        keepers,
        wkey,
        provider_ata,
        provider,
        user,
        user_ata,
        lease,
        ..
    } = scene(1).await;
    let kw = &keepers[0];
    let keeper_account = pda::keeper(&kw.pubkey());
    assert_eq!(n.client.lease(&lease).await.unwrap().keeper, keeper_account);

    // The keeper: directories from the chain, a watcher following it.
    let dir = Arc::new(ChainDirectory::new(keeper_account));
    let watcher = Watcher::new(
        &WatchConfig {
            rpc_url: n.net.rpc_url().to_string(),
            ws_url: Some(n.net.ws_url().to_string()),
            reconcile_every: Duration::from_millis(500),
        },
        dir.clone(),
    );
    assert!(watcher.reconcile().await.unwrap().is_empty());
    assert_eq!(dir.served_leases(), vec![lease]);
    // The keeper signs its challenges with its on-chain wallet (what auditors check).
    let wallet_file = tmp.path().join("keeper.json");
    std::fs::write(&wallet_file, keys::keypair_to_json(&signing_key(kw))).unwrap();
    let cfg = KeeperConfig {
        listen: format!("127.0.0.1:{port}"),
        metrics_listen: String::new(),
        db_path: String::new(),
        keeper_key: Some(wallet_file.display().to_string()),
        ..KeeperConfig::default()
    };
    let cancel = CancellationToken::new();
    let h = gpunet_keeper::start(cfg, dir.clone(), dir.clone(), cancel.clone())
        .await
        .expect("keeper starts");
    h.prover().set_anchor(dir.clone());
    watcher.spawn(h.core().clone(), cancel.clone());

    // A worker key the provider's account does not list is refused for good.
    let stranger = worker(&url, &provider, &Keypair::new(), tmp.path());
    let refused = tokio::time::timeout(Duration::from_secs(30), stranger.join())
        .await
        .expect("refused in time");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not listed")),
        "{refused:?}"
    );
    // The listed worker joins the lease's cluster.
    let w = worker(&url, &provider, &wkey, tmp.path());

    // Only the lease's user may open a session on it.
    let other = Keypair::new();
    let denied = Client::connect(&url, &lease.to_string(), &signing_key(&other)).await;
    assert!(denied.is_err(), "a stranger opened a session on the lease");
    let c = Client::connect(&url, &lease.to_string(), &signing_key(&user))
        .await
        .expect("the user opens a session");
    let ids = c
        .submit(vec![spec::process(&["sh", "-c", "printf %s hello"])])
        .await
        .unwrap();
    let got = c.get(ids[0], 0, Duration::from_secs(60)).await.unwrap();
    assert_eq!(&got.data[..], b"hello");
    let cluster = c.cluster().await.unwrap();
    assert_eq!(cluster.provider, provider.to_string());
    assert_eq!(cluster.gpus_requested, 2);

    // A checkpoint period passes on the chain's clock: the worker is proved and the period
    // paid — the provider gets exactly the verified time's price less the fees.
    let checkpointer = Checkpointer::new(
        n.net.rpc_url(),
        kw.insecure_clone(),
        dir.clone(),
        h.prover().clone(),
        h.core().clone(),
    );
    assert_eq!(
        checkpointer.checkpoint(&lease).await.unwrap(),
        Posted::NotDue
    );
    let before = n.balance(&provider_ata).await;
    n.client.time_travel_by(301).await.unwrap();
    let posted = checkpointer.checkpoint(&lease).await.unwrap();
    assert_eq!(
        posted,
        Posted::Posted {
            sequence: 1,
            verdict: Verdict::Pass
        }
    );
    let l = n.client.lease(&lease).await.unwrap();
    assert!(
        l.paid_until - l.start >= 301,
        "{} .. {}",
        l.start,
        l.paid_until
    );
    let cost = (l.paid_until - l.start) as u64 * 20;
    let paid = cost - cost * 500 / 10_000 - cost * 200 / 10_000;
    assert_eq!(n.balance(&provider_ata).await - before, paid);
    assert_eq!(l.paid_provider, paid);
    assert_ne!(
        l.last_digest, [0; 32],
        "the transcript's digest is on chain"
    );
    // Anyone can audit the payout: the keeper serves the transcript, which re-verifies and
    // hashes to the digest on chain; a doctored transcript does not.
    let audits = audit_lease(&n.client, &lease).await.unwrap();
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].posted.sequence, 1);
    assert_eq!(audits[0].outcome, AuditOutcome::Verified { proofs: 1 });
    let served = gpunet_sdk::task::transcript(&url, &lease.to_string(), 1)
        .await
        .unwrap();
    assert_eq!(&served.digest[..], &l.last_digest[..]);
    // The keeper's own explorer page shows the lease, its paid checkpoint with its digest, and
    // the live cluster: the worker and the task it ran.
    let explorer = Arc::new(Explorer::new(
        n.net.rpc_url(),
        Scope::Keeper(keeper_account),
        vec![h.core().clone()],
    ));
    explorer.refresh().await.unwrap();
    let addr = explorer.serve("127.0.0.1:0", cancel.clone()).await.unwrap();
    let page = http_get(addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains(&format!("id=\"lease-{lease}\"")), "{page}");
    assert!(page.contains("Checkpoints (1)"), "{page}");
    assert!(page.contains("class=\"pass\">pass"), "{page}");
    assert!(page.contains(&hex8(&l.last_digest)), "{page}");
    assert!(
        page.contains(&wkey.pubkey().to_string()),
        "the worker: {page}"
    );
    // The user's task and the checkpoint's proof task, both finished.
    assert!(page.contains("Tasks (2 most recent)"), "{page}");
    assert!(page.contains("<td>sh</td><td>finished</td>"), "{page}");
    assert!(
        page.contains(&format!(
            "benchmark proof of {}</td><td>finished</td>",
            wkey.pubkey()
        )),
        "{page}"
    );
    let fragment = http_get(addr, "/fragment").await;
    assert!(fragment.contains("<h1>gpunet explorer</h1>") && !fragment.contains("<script>"));
    let ctx = Context {
        keeper_wallet: kw.pubkey().to_bytes(),
        posted_slot: audits[0].slot,
        previous_slot: 0,
        schedule: n.client.rpc().get_epoch_schedule().await.unwrap(),
    };
    // The challenge is anchored on the chain: a slot and that slot's hash from SlotHashes.
    let t = Transcript::decode(&served.proofs[0].transcript).unwrap();
    let hashes = n
        .client
        .rpc()
        .get_account(&gpunet::committee::SLOT_HASHES_ID)
        .await
        .unwrap()
        .data;
    let anchored = hashes[8..]
        .chunks_exact(40)
        .find(|e| u64::from_le_bytes(e[..8].try_into().unwrap()) == t.challenge.body.slot)
        .map(|e| &e[8..]);
    assert_eq!(
        anchored,
        Some(&t.challenge.body.slot_hash[..]),
        "slot hash of slot {}",
        t.challenge.body.slot
    );
    let mut flipped = served.clone();
    flipped.pass = false;
    let mut doctored = served.clone();
    let mut bytes = doctored.proofs[0].transcript.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    doctored.proofs[0].transcript = bytes.into();
    for bad in [&doctored, &flipped] {
        assert!(
            matches!(
                check(&audits[0].posted, &ctx, bad),
                AuditOutcome::Mismatch(_)
            ),
            "a doctored transcript passed the audit"
        );
    }
    let mut posted_fail = audits[0].posted.clone();
    posted_fail.verdict = Verdict::Fail;
    assert!(matches!(
        check(&posted_fail, &ctx, &served),
        AuditOutcome::Mismatch(_)
    ));
    let other_keeper = Context {
        keeper_wallet: Keypair::new().pubkey().to_bytes(),
        ..ctx.clone()
    };
    assert!(matches!(
        check(&audits[0].posted, &other_keeper, &served),
        AuditOutcome::Mismatch(_)
    ));
    // A challenge anchored after the checkpoint landed cannot have been its evidence.
    let too_early = Context {
        posted_slot: t.challenge.body.slot - 1,
        ..ctx.clone()
    };
    assert!(matches!(
        check(&audits[0].posted, &too_early, &served),
        AuditOutcome::Mismatch(_)
    ));
    // Asked again (a retry, a restart): the period is not paid twice.
    assert_eq!(
        checkpointer.checkpoint(&lease).await.unwrap(),
        Posted::NotDue
    );
    assert_eq!(n.balance(&provider_ata).await - before, paid);

    // A long task runs when the user closes the lease on chain.
    let long = c
        .submit(vec![spec::process(&["sleep", "120"])])
        .await
        .unwrap()[0];
    for _ in 0..600 {
        let st = c.status(&[long]).await.unwrap();
        if st[0].state() == pb::TaskState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parties = LeaseParties {
        lease,
        provider,
        keeper: keeper_account,
        mint: n.mint,
        treasury: n.treasury,
    };
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
        .expect("lease_close");
    // The keeper learns it (pubsub or the next full read): the task fails saying why, and the
    // user's session can still read that.
    let mut ended = None;
    for _ in 0..200 {
        let st = c.status(&[long]).await.unwrap();
        if st[0].state() == pb::TaskState::Failed {
            ended = Some(st[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = ended.expect("the lease ended within 10 s");
    assert_eq!(ended.error_kind(), pb::ErrorKind::LeaseEnded);
    assert!(ended.error.contains("closed on chain"), "{}", ended.error);
    // New work on it is refused, saying why.
    let refused = c.submit(vec![spec::process(&["true"])]).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("closed on chain"), "{refused:?}");
    assert!(dir.served_leases().is_empty());
    let again = Client::connect(&url, &lease.to_string(), &signing_key(&user)).await;
    let err = again
        .err()
        .expect("no session on a closed lease")
        .to_string();
    assert!(
        err.contains("ended") && err.contains("closed on chain"),
        "{err}"
    );

    cancel.cancel();
    w.cancel.cancel();
    let _ = w.join().await;
    h.wait().await.unwrap();
}

/// A keeper silent past interval + grace loses the lease to its successor, which serves the
/// user's tasks from then on; the old keeper, reading the chain again, lets the lease go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_silent_keepers_lease_passes_to_its_successor_which_serves_it() {
    let Scene {
        n,
        tmp,
        ports,
        urls,
        mut keepers,
        wkey,
        provider,
        user,
        lease,
        ..
    } = scene(2).await;
    let (k2, k1) = (keepers.pop().unwrap(), keepers.pop().unwrap());
    // Both keepers are on the committee; the draw decides which serves first. The successor
    // runs at the endpoint its account publishes.
    let l = n.client.lease(&lease).await.unwrap();
    assert_eq!(l.committee().len(), 2);
    let (old, new, port, url) = if l.keeper == pda::keeper(&k1.pubkey()) {
        (k1, k2, ports[1], urls[1].clone())
    } else {
        (k2, k1, ports[0], urls[0].clone())
    };
    let (old_account, new_account) = (pda::keeper(&old.pubkey()), pda::keeper(&new.pubkey()));
    assert_eq!(l.keeper, old_account);
    let watch = WatchConfig {
        rpc_url: n.net.rpc_url().to_string(),
        ws_url: Some(n.net.ws_url().to_string()),
        reconcile_every: Duration::from_millis(500),
    };
    let old_dir = Arc::new(ChainDirectory::new(old_account));
    let old_watcher = Watcher::new(&watch, old_dir.clone());
    old_watcher.reconcile().await.unwrap();
    assert_eq!(old_dir.served_leases(), vec![lease]);

    // The successor's keeper runs; the old one is silent (it never posts a checkpoint).
    let new_dir = Arc::new(ChainDirectory::new(new_account));
    let new_watcher = Watcher::new(&watch, new_dir.clone());
    new_watcher.reconcile().await.unwrap();
    assert!(new_dir.served_leases().is_empty());
    let cfg = KeeperConfig {
        listen: format!("127.0.0.1:{port}"),
        metrics_listen: String::new(),
        db_path: String::new(),
        ..KeeperConfig::default()
    };
    let cancel = CancellationToken::new();
    let h = gpunet_keeper::start(cfg, new_dir.clone(), new_dir.clone(), cancel.clone())
        .await
        .unwrap();
    let reassigner = Reassigner::new(n.net.rpc_url(), new.insecure_clone(), h.core().clone());
    // Not late yet: nothing happens.
    assert!(reassigner.tick().await.unwrap().is_empty());
    let terms = l.terms;
    n.client
        .time_travel_by(terms.checkpoint_interval + terms.grace_period + 1)
        .await
        .unwrap();
    assert_eq!(reassigner.tick().await.unwrap(), vec![lease]);
    assert_eq!(n.client.lease(&lease).await.unwrap().keeper, new_account);
    // The successor serves it: a worker joins, the user's task runs.
    assert!(new_watcher.reconcile().await.unwrap().is_empty());
    assert_eq!(new_dir.served_leases(), vec![lease]);
    let w = worker(&url, &provider, &wkey, tmp.path());
    let c = Client::connect(&url, &lease.to_string(), &signing_key(&user))
        .await
        .unwrap();
    let id = c
        .submit(vec![spec::process(&["printf", "resumed"])])
        .await
        .unwrap()[0];
    assert_eq!(
        &c.get(id, 0, Duration::from_secs(60)).await.unwrap().data[..],
        b"resumed"
    );
    // The old keeper, back, reads that the lease is no longer its own.
    let ended = old_watcher.reconcile().await.unwrap();
    assert_eq!(ended, vec![(lease, Ended::Reassigned(new_account))]);
    assert!(old_dir.served_leases().is_empty());

    cancel.cancel();
    w.cancel.cancel();
    let _ = w.join().await;
    h.wait().await.unwrap();
}

/// A plain HTTP/1.1 GET on loopback: the response, head and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn hex8(d: &[u8; 32]) -> String {
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}
