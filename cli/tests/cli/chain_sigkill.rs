//! A chain-mode keeper (`gpunet keeper run`, a real process) killed with SIGKILL at a
//! different moment of each checkpoint period and started again on the same database: every
//! period is paid exactly once, none is skipped, the escrow settles to the second, and every
//! checkpoint's transcript — recorded before its transaction was sent — is still served, so
//! `gpunet lease audit` verifies all of them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gpunet_sdk::GpunetClient;
use gpunet_sdk::gpunet::state::Verdict;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::Keypair;
use solana_sdk::signer::Signer;

use crate::chain::start_localnet;
use crate::key;

fn spawn_chain_keeper(url: &str, wallet: &Path, port: u16, db: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["keeper", "run", "--url", url, "--keypair"])
        .arg(wallet)
        .env("GPUNET_KEEPER_LISTEN", format!("127.0.0.1:{port}"))
        .env("GPUNET_KEEPER_METRICS_LISTEN", "")
        .env("GPUNET_KEEPER_DB_PATH", db)
        .env("GPUNET_KEEPER_RECONCILE_EVERY", "200ms")
        .env("GPUNET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn keeper")
}

/// The keeper process, killed if the test fails part-way.
struct Keeper(Child);

impl Drop for Keeper {
    fn drop(&mut self) {
        kill9(&mut self.0);
    }
}

fn kill9(child: &mut Child) {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .expect("kill");
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_chain_keeper_sigkilled_each_period_pays_every_period_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json");
    let (net, _) = start_localnet(dir.path(), &admin);
    let client = GpunetClient::new(net.url.clone());

    // The admin wallet is provider (listing one worker key) and keeper (publishing its port).
    let wkey = key(77);
    let worker_pubkey = Pubkey::new_from_array(wkey.verifying_key().to_bytes());
    let port = crate::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    net.ok(
        &admin,
        &[
            "provider",
            "register",
            "--region",
            "eu-west",
            "--zone",
            "a",
            "--gpu-class",
            "h100",
            "--gpus",
            "4",
            "--vram",
            "80",
            "--price",
            "10",
            "--endpoint",
            "grpc://127.0.0.1:7000",
            "--worker",
            &worker_pubkey.to_string(),
        ],
    );
    net.ok(&admin, &["provider", "stake", "4000000000"]);
    net.ok(&admin, &["keeper", "register", "--endpoint", &endpoint]);
    let admin_pubkey = net.ok(&admin, &["config", "show"])["admin"]
        .as_str()
        .unwrap()
        .to_string();
    let provider = gpunet_sdk::pda::provider(&admin_pubkey.parse().unwrap());

    let user = dir.path().join("user.json");
    let user_key = Keypair::new();
    solana_sdk::signature::write_keypair_file(&user_key, &user).unwrap();
    net.ok(
        &admin,
        &[
            "faucet",
            &user_key.pubkey().to_string(),
            "--sol",
            "5",
            "--tokens",
            "100000",
        ],
    );
    let opened = net.ok(
        &user,
        &[
            "lease",
            "open",
            "--provider",
            &admin_pubkey,
            "--gpus",
            "2",
            "--duration",
            "3000",
        ],
    );
    let lease: Pubkey = opened["lease"].as_str().unwrap().parse().unwrap();

    let db = dir.path().join("keeper.redb");
    let mut keeper = Keeper(spawn_chain_keeper(&net.url, &admin, port, &db));
    let wdir = dir.path().join("worker");
    let mut wc = gpunet_worker::WorkerConfig::new(&endpoint, &provider.to_string(), wkey);
    wc.declared_gpus = Some(gpunet_worker::DeclaredGpus {
        count: 2,
        model: "sim".into(),
        memory_bytes: 1 << 30,
    });
    wc.work_dir = wdir;
    wc.backoff_max = Duration::from_millis(200);
    let worker = gpunet_worker::spawn(wc);

    // Each period: the chain's clock passes it, and the keeper is killed 0 ms, 150 ms, …
    // later — before it proves, while it proves, around the send — then started again.
    const PERIODS: u64 = 4;
    for round in 1..=PERIODS {
        client.time_travel_by(301).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150 * (round - 1) * 2)).await;
        kill9(&mut keeper.0);
        keeper = Keeper(spawn_chain_keeper(&net.url, &admin, port, &db));
        let mut sequence = 0;
        for _ in 0..600 {
            sequence = client.lease(&lease).await.unwrap().last_sequence;
            if sequence >= round {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            sequence, round,
            "period {round} posted once, after the restart"
        );
    }

    // Exactly the periods, back to back from the start, all passed; the escrow settled is
    // exactly the time settled at the lease's price.
    let l = client.lease(&lease).await.unwrap();
    let posted = gpunet_sdk::audit::checkpoints_posted(&client, &lease)
        .await
        .unwrap();
    let sequences: Vec<u64> = posted.iter().map(|(p, _)| p.sequence).collect();
    assert_eq!(sequences, (1..=PERIODS).collect::<Vec<_>>());
    let mut start = l.start;
    for (p, _) in &posted {
        assert_eq!(
            p.period_start, start,
            "checkpoint {} leaves no gap",
            p.sequence
        );
        assert!(p.period_end - p.period_start >= 300);
        assert_eq!(p.verdict, Verdict::Pass);
        start = p.period_end;
    }
    assert_eq!(l.paid_until, start);
    let settled = (l.paid_until - l.start) as u64 * 2 * 10;
    assert_eq!(l.paid_provider + l.paid_protocol + l.paid_keeper, settled);
    let paid: u64 = posted.iter().map(|(p, _)| p.paid_provider).sum();
    assert_eq!(paid, l.paid_provider, "each period paid once");
    // Every transcript survived the kills: anyone can audit every payout.
    // (The last keeper may still be starting: a transcript it cannot serve yet is
    // "unavailable", not false.)
    let mut tries = 0;
    let audit = loop {
        let (ok, audit, err) = net.run(&user, &["lease", "audit", &lease.to_string()]);
        tries += 1;
        if ok {
            break audit;
        }
        let transient = audit.as_array().is_some_and(|rows| {
            rows.iter().all(|r| {
                r["verified"] == true
                    || r["outcome"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("unavailable"))
            })
        });
        assert!(transient && tries < 50, "{audit:#}\n{err}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let rows = audit.as_array().expect("audit rows");
    assert_eq!(rows.len() as u64, PERIODS, "{audit}");
    assert!(rows.iter().all(|r| r["verified"] == true), "{audit}");

    worker.cancel.cancel();
    let _ = worker.join().await;
    drop(keeper);
    net.stop();
}
