//! `gpunet localnet` as a real process, driven by the chain commands over JSON-RPC:
//! a provider registers and stakes, a keeper registers, a user opens, tops up and closes a
//! lease; bad input gets a clear error and a non-zero exit; SIGTERM stops the localnet cleanly
//! and a restart on the same `--ledger` finds everything again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub(crate) struct Localnet {
    child: Child,
    pub url: String,
}

/// `gpunet localnet --bare` (the chain and gpunet's initialisation only).
pub(crate) fn start_localnet(dir: &Path, keypair: &Path) -> (Localnet, Value) {
    start_localnet_with(dir, keypair, &["--bare"], &[("GPUNET_LOG", "warn")])
}

pub(crate) fn start_localnet_with(
    dir: &Path,
    keypair: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Localnet, Value) {
    let (rpc, ws) = (crate::free_port(), crate::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args([
            "localnet",
            "--output",
            "json",
            "--rpc-port",
            &rpc.to_string(),
            "--ws-port",
            &ws.to_string(),
        ])
        .args(args)
        .arg("--ledger")
        .arg(dir.join("ledger"))
        .arg("--keypair")
        .arg(keypair)
        .env_remove("GPUNET_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn localnet");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("summary line");
    let summary: Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    (
        Localnet {
            child,
            url: format!("http://127.0.0.1:{rpc}"),
        },
        summary,
    )
}

/// A test that fails part-way leaves no localnet process behind.
impl Drop for Localnet {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Localnet {
    /// Runs `gpunet ARGS --url … --keypair KEYPAIR --output json`.
    pub(crate) fn run(&self, keypair: &Path, args: &[&str]) -> (bool, Value, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
            .args(args)
            .args(["--url", &self.url, "--output", "json", "--keypair"])
            .arg(keypair)
            .output()
            .expect("run gpunet");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (out.status.success(), v, stderr)
    }

    /// A new wallet `name` in `dir` with 5 SOL and `tokens` base units from `admin`'s faucet.
    pub(crate) fn wallet(&self, admin: &Path, dir: &Path, name: &str, tokens: &str) -> PathBuf {
        let path = dir.join(format!("{name}.json"));
        let kp = solana_sdk::signature::Keypair::new();
        solana_sdk::signature::write_keypair_file(&kp, &path).unwrap();
        let key = solana_sdk::signer::Signer::pubkey(&kp).to_string();
        self.ok(admin, &["faucet", &key, "--sol", "5", "--tokens", tokens]);
        path
    }

    /// Registers and stakes `wallet` as a provider of two H100s in `region`/`zone`.
    pub(crate) fn provider(&self, wallet: &Path, region: &str, zone: &str, price: &str) {
        self.ok(
            wallet,
            &[
                "provider",
                "register",
                "--region",
                region,
                "--zone",
                zone,
                "--endpoint",
                "grpc://127.0.0.1:7000",
                "--gpu-class",
                "h100",
                "--gpus",
                "2",
                "--vram",
                "80",
                "--price",
                price,
            ],
        );
        self.ok(wallet, &["provider", "stake", "2000000000"]);
    }

    pub(crate) fn ok(&self, keypair: &Path, args: &[&str]) -> Value {
        let (ok, v, err) = self.run(keypair, args);
        assert!(ok, "gpunet {args:?} failed: {err}");
        v
    }

    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = self.child.wait().expect("wait");
        assert!(exit.success(), "localnet exit status {exit:?}");
    }
}

#[test]
fn test_cli_localnet_provider_keeper_and_lease_flow() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json"); // created by `gpunet localnet`
    let (net, summary) = start_localnet(dir.path(), &admin);
    assert_eq!(summary["initialised"], "now");
    assert!(admin.exists(), "the localnet created the admin keypair");
    let admin_key = summary["admin"].as_str().unwrap().to_string();

    // A second wallet for the user, funded by the faucet.
    let user = dir.path().join("user.json");
    let user_key = {
        let kp = solana_sdk::signature::Keypair::new();
        solana_sdk::signature::write_keypair_file(&kp, &user).unwrap();
        solana_sdk::signer::Signer::pubkey(&kp).to_string()
    };
    net.ok(
        &admin,
        &["faucet", &user_key, "--sol", "5", "--tokens", "100000"],
    );

    let config = net.ok(&admin, &["config", "show"]);
    assert_eq!(config["admin"], admin_key.as_str());

    // The admin wallet also acts as provider and keeper (each role has its own account).
    net.ok(
        &admin,
        &[
            "provider",
            "register",
            "--region",
            "eu-west",
            "--zone",
            "a",
            "--endpoint",
            "grpc://127.0.0.1:7000",
            "--gpu-class",
            "h100",
            "--gpus",
            "4",
            "--vram",
            "80",
            "--price",
            "10",
        ],
    );
    let staked = net.ok(&admin, &["provider", "stake", "4000000000"]);
    assert_eq!(staked["staked"], 4_000_000_000u64);
    net.ok(&admin, &["keeper", "register"]);
    let listed = net.ok(&admin, &["provider", "list", "--region", "eu-west"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        net.ok(&admin, &["keeper", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bad input: a clear error and a non-zero exit, nothing changed.
    let (ok, _, err) = net.run(
        &user,
        &[
            "lease",
            "open",
            "--provider",
            &admin_key,
            "--gpus",
            "1",
            "--duration",
            "100000",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("insufficient funds: need 1000000, have 100000"),
        "{err}"
    );
    let (ok, _, err) = net.run(
        &user,
        &[
            "lease",
            "open",
            "--provider",
            &admin_key,
            "--gpus",
            "1",
            "--duration",
            "60",
            "--max-price",
            "5",
        ],
    );
    assert!(!ok);
    assert!(err.contains("PriceAboveMax"), "{err}");
    let (ok, _, err) = net.run(&user, &["provider", "show", &user_key]);
    assert!(!ok);
    assert!(err.contains("no provider with that key"), "{err}");

    // Open, top up, close.
    let opened = net.ok(
        &user,
        &[
            "lease",
            "open",
            "--provider",
            &admin_key,
            "--gpus",
            "2",
            "--duration",
            "600",
        ],
    );
    assert_eq!(opened["deposit"], 12_000);
    let lease = opened["lease"].as_str().unwrap().to_string();
    let topped = net.ok(&user, &["lease", "top-up", &lease, "2000"]);
    assert_eq!(topped["funded"], 14_000);
    let mine = net.ok(&user, &["lease", "list"]);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    // Resize: the same count is refused by name; a shrink to one GPU refunds the other GPU's
    // escrow for the time the lease is funded for (nothing is billed before a checkpoint).
    let (ok, _, err) = net.run(&user, &["lease", "resize", &lease, "--gpus", "2"]);
    assert!(!ok && err.contains("InvalidResize"), "{err}");
    let shrunk = net.ok(&user, &["lease", "resize", &lease, "--gpus", "1"]);
    let refund = shrunk["refund"].as_u64().unwrap();
    let (until, from) = (
        shrunk["funded_until"].as_i64().unwrap(),
        shrunk["bills_from"].as_i64().unwrap(),
    );
    assert_eq!(refund, 10 * (until - from) as u64, "{shrunk}");
    assert!(refund > 0 && shrunk["deposit"] == 0, "{shrunk}");
    let closed = net.ok(&user, &["lease", "close", &lease]);
    assert_eq!(closed["refunded"], 14_000 - refund);
    let (ok, _, err) = net.run(&user, &["lease", "show", &lease]);
    assert!(!ok && err.contains("no lease at"), "{err}");
    net.stop();

    // A restart on the same ledger finds everything again.
    let (net, summary) = start_localnet(dir.path(), &admin);
    assert_eq!(summary["initialised"], "already");
    let p = net.ok(&admin, &["provider", "show"]);
    assert_eq!(p["staked"], 4_000_000_000u64);
    net.stop();
}

/// `gpunet localnet` (not bare) runs all of gpunet: three keepers publishing their endpoints
/// and a demo provider whose workers run in the same process, with funded wallets in the
/// directory it prints. From another terminal, the user wallet it made opens a lease on the
/// demo provider and runs a task on it. Its terminal stays quiet: library and program log lines
/// go to the log file it names.
#[test]
fn test_cli_localnet_runs_keepers_and_a_demo_provider_that_serve_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json");
    let (net, summary) = start_localnet_with(
        dir.path(),
        &admin,
        &["--keeper-port", "0", "--explorer-port", "0"],
        &[],
    );
    assert_eq!(
        summary["keepers"].as_array().map(Vec::len),
        Some(3),
        "{summary}"
    );
    assert_eq!(summary["workers"], 2);
    assert!(summary["prover"].as_str().is_some_and(|p| !p.is_empty()));
    let wallets = Path::new(summary["wallets"].as_str().unwrap()).to_path_buf();
    assert!(
        wallets.starts_with(dir.path()),
        "beside the ledger: {wallets:?}"
    );
    let log = Path::new(summary["log"].as_str().expect("a log file")).to_path_buf();
    let user = Path::new(summary["user_wallet"].as_str().unwrap()).to_path_buf();
    let provider = summary["provider"].as_str().unwrap().to_string();
    assert_eq!(
        net.ok(&admin, &["keeper", "list"]).as_array().map(Vec::len),
        Some(3)
    );

    let opened = net.ok(
        &user,
        &[
            "lease",
            "open",
            "--provider",
            &provider,
            "--gpus",
            "2",
            "--duration",
            "600",
        ],
    );
    let lease = opened["lease"].as_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args([
            "task", "submit", "--lease", &lease, "--wait", "--url", &net.url,
        ])
        .arg("--keypair")
        .arg(&user)
        .args(["--", "echo", "hello"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l == "hello"), "{stdout}");

    // A job with a working directory, its logs followed to its end; then listed, read again,
    // and a second one stopped.
    let job_dir = dir.path().join("job");
    std::fs::create_dir_all(&job_dir).unwrap();
    std::fs::write(
        job_dir.join("run.sh"),
        "echo step one; sleep 1; echo careful >&2; echo step two\n",
    )
    .unwrap();
    let gpunet = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gpunet"))
            .args(["--url", &net.url, "--keypair"])
            .arg(&user)
            .args(args)
            .output()
            .unwrap()
    };
    let wd = job_dir.display().to_string();
    let out = gpunet(&[
        "job",
        "submit",
        "--lease",
        &lease,
        "--working-dir",
        &wd,
        "--follow",
        "--",
        "sh",
        "run.sh",
    ]);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{so}\n{se}");
    assert_eq!(so, "step one\nstep two\n", "{se}");
    assert!(se.contains("careful"), "{se}");
    let listed = gpunet(&["--output", "json", "job", "list", "--lease", &lease]);
    let jobs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let job = &jobs.as_array().unwrap()[0];
    assert_eq!(
        (&job["name"], &job["state"]),
        (&"job:sh".into(), &"finished".into()),
        "{jobs}"
    );
    let id = job["task_id"].to_string();
    let again = gpunet(&["job", "logs", &id, "--lease", &lease]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "step one\nstep two\n"
    );
    let long = gpunet(&[
        "--output", "json", "job", "submit", "--lease", &lease, "--", "sleep", "60",
    ]);
    let long: serde_json::Value = serde_json::from_slice(&long.stdout).unwrap();
    let long_id = long["job_id"].to_string();
    let stopped = gpunet(&["job", "stop", &long_id, "--lease", &lease]);
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped"));
    let followed = gpunet(&["job", "logs", &long_id, "--follow", "--lease", &lease]);
    assert!(!followed.status.success(), "a stopped job ends as failed");

    // The provider's other two GPUs as a cluster from a spec, addressed by its id: tasks
    // named LEASE.TASK, an argument passed by ref, the cluster's view over its leases.
    let opened = net.ok(
        &user,
        &["cluster", "open", "--gpus", "2", "--duration", "600"],
    );
    let cid = opened["cluster"].to_string();
    let json = |args: &[&str]| {
        let out = gpunet(&[&["--output", "json", "task", "--cluster", &cid], args].concat());
        let so = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {so}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        so
    };
    let mut view: serde_json::Value = serde_json::Value::Null;
    for _ in 0..100 {
        view = serde_json::from_str(&json(&["cluster"])).unwrap();
        if view["gpus_ready"] == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(view["leases"][0]["gpus_ready"], 2, "{view}");
    let sub: serde_json::Value = serde_json::from_str(&json(&[
        "submit",
        "--gpus",
        "1",
        "--",
        "echo",
        "from-the-cluster",
    ]))
    .unwrap();
    let t = sub["tasks"][0].as_str().unwrap().to_string();
    assert!(t.starts_with("0."), "{sub}");
    let out = gpunet(&["task", "--cluster", &cid, "get", &t]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-the-cluster\n");
    let listed = json(&["list"]);
    assert!(listed.contains(&format!("\"task\":\"{t}\"")), "{listed}");
    // A lease's task id alone is refused here, and --lease with --cluster is refused.
    let bad = gpunet(&["task", "--cluster", &cid, "status", "7"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("LEASE.TASK"));
    let both = gpunet(&["task", "--cluster", &cid, "--lease", &lease, "list"]);
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    // A job on the cluster: followed to its end, then listed by its LEASE.TASK id.
    let out = gpunet(&[
        "job",
        "--cluster",
        &cid,
        "submit",
        "--follow",
        "--",
        "sh",
        "-c",
        "echo cluster-job",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cluster-job\n");
    let jobs: serde_json::Value =
        serde_json::from_str(&json_job(&gpunet, &cid, &["list"])).unwrap();
    let job = &jobs.as_array().unwrap()[0];
    assert_eq!(job["state"], "finished", "{jobs}");
    let jid = job["job_id"].as_str().unwrap().to_string();
    assert!(jid.starts_with("0."), "{jobs}");
    let again = gpunet(&["job", "--cluster", &cid, "logs", &jid]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), "cluster-job\n");

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("ConfigInit"),
        "program logs go to the log file"
    );
    net.stop();
}

/// `gpunet localnet --exit-after-demo`: the narrated lease runs to its end — cluster, DAG,
/// a paid checkpoint, a shirking worker slashed, the refund — and every balance adds up to the
/// supply; the process exits 0.
#[test]
fn test_cli_localnet_demo_runs_a_whole_lease_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, ws) = (crate::free_port(), crate::free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args([
            "localnet",
            "--exit-after-demo",
            "--keeper-port",
            "0",
            "--explorer-port",
            "0",
        ])
        .args(["--rpc-port", &rpc.to_string(), "--ws-port", &ws.to_string()])
        .arg("--dir")
        .arg(dir.path().join("wallets"))
        .arg("--keypair")
        .arg(dir.path().join("admin.json"))
        .env_remove("GPUNET_LOG")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in 1..=8 {
        assert!(
            stdout.contains(&format!("demo {step}/8")),
            "step {step}: {stdout}"
        );
    }
    assert!(stdout.contains("→ 42"), "{stdout}");
    assert!(stdout.contains("checkpoint 1 (pass)"), "{stdout}");
    assert!(
        stdout.contains("provider jailed; lease goes on with 2 healthy GPU(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("checkpoint 3 (pass) on 2 GPU(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("total = token supply"), "{stdout}");
    assert!(!stdout.contains("demo failed"), "{stdout}");
}

/// `migrations/init.sh` initialises gpunet on a chain by URL (here a localnet started with
/// `--no-init`), as the localnet does by itself on a fresh chain; run again, it changes nothing.
#[test]
fn test_migrations_init_initialises_a_chain_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json");
    crate::write_key(&admin, &crate::key(41));
    let (net, summary) = start_localnet_with(
        dir.path(),
        &admin,
        &["--no-init"],
        &[("GPUNET_LOG", "warn")],
    );
    assert!(summary.get("mint").is_none(), "{summary}");
    let (ok, _, _) = net.run(&admin, &["config", "show"]);
    assert!(!ok, "not initialised yet");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/init.sh");
    let run = || {
        let out = Command::new("bash")
            .arg(&script)
            .arg(&net.url)
            .arg(&admin)
            .args(["--airdrop", "10"])
            .env("GPUNET", env!("CARGO_BIN_EXE_gpunet"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    assert!(run().contains("initialising gpunet"));
    let cfg = net.ok(&admin, &["config", "show"]);
    assert_eq!(cfg["admin"], crate::b58(&crate::key(41)));
    assert!(run().contains("already initialised"));
    assert_eq!(net.ok(&admin, &["config", "show"])["mint"], cfg["mint"]);
    net.stop();
}

/// `gpunet --output json job --cluster ID ARGS`'s stdout (asserting success).
fn json_job(
    gpunet: &dyn Fn(&[&str]) -> std::process::Output,
    cluster: &str,
    args: &[&str],
) -> String {
    let out = gpunet(&[&["--output", "json", "job", "--cluster", cluster], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `gpunet cluster open`: a spec matched across three providers in three zones, opened as three
/// leases in one transaction and addressed by one id; a spec nobody can meet is refused saying
/// why; `--into` grows the cluster with another lease; `cluster close` closes every lease.
#[test]
fn test_cli_cluster_open_matches_a_spec_across_three_providers() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.json");
    let (net, _) = start_localnet(dir.path(), &admin);
    net.ok(&admin, &["keeper", "register"]);
    let wallet = |name: &str, tokens: &str| net.wallet(&admin, dir.path(), name, tokens);
    for (name, region, zone, price) in [
        ("p1", "eu-west", "a", "10"),
        ("p2", "eu-west", "b", "11"),
        ("p3", "eu-north", "a", "12"),
        ("far", "us-east", "a", "1"),
    ] {
        let p = wallet(name, "2000000000");
        net.provider(&p, region, zone, price);
    }
    let user = wallet("user", "1000000");
    let spec = [
        "cluster",
        "open",
        "--gpus",
        "5",
        "--gpu-class",
        "h100",
        "--regions",
        "eu-west,eu-north",
        "--spread-zones",
        "--duration",
        "600",
    ];
    // The plan first: the cheap provider in us-east is out of region; three zones share five
    // GPUs two, two and one.
    let plan = net.ok(&user, &[&spec[..], &["--dry-run"]].concat());
    let mut split: Vec<(String, u64)> = plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p["region"].as_str().unwrap(),
                    p["zone"].as_str().unwrap()
                ),
                p["gpus"].as_u64().unwrap(),
            )
        })
        .collect();
    split.sort();
    assert_eq!(
        split,
        vec![
            ("eu-north/a".to_string(), 1),
            ("eu-west/a".to_string(), 2),
            ("eu-west/b".to_string(), 2)
        ]
    );
    assert!(
        net.ok(&user, &["cluster", "list"])
            .as_array()
            .unwrap()
            .is_empty(),
        "a dry run opens nothing"
    );

    let opened = net.ok(&user, &spec);
    assert_eq!(opened["cluster"], 0);
    assert_eq!(opened["atomic"], true, "{opened}");
    let leases = opened["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 3);
    for l in leases {
        let shown = net.ok(&user, &["lease", "show", l["lease"].as_str().unwrap()]);
        assert_eq!(shown["status"], "Active", "{shown}");
        assert_eq!(shown["gpus"], l["gpus"]);
    }
    let listed = net.ok(&user, &["cluster", "list"]);
    assert_eq!(listed[0]["leases"], 3);
    assert_eq!(listed[0]["gpus"], 5);
    assert_eq!(listed[0]["active"], 3);
    let shown = net.ok(&user, &["cluster", "show", "0"]);
    assert_eq!(shown["leases"].as_array().unwrap().len(), 3);

    // One GPU of the three zones is left: a second cluster of two cannot be had.
    let (ok, _, err) = net.run(
        &user,
        &[
            "cluster",
            "open",
            "--gpus",
            "2",
            "--regions",
            "eu-west,eu-north",
            "--duration",
            "600",
        ],
    );
    assert!(!ok);
    assert!(err.contains("only 1 GPUs match the spec"), "{err}");
    assert_eq!(
        net.ok(&user, &["cluster", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The last GPU grows cluster 0 instead: a fourth lease under the same id.
    let grow = [
        "cluster",
        "open",
        "--gpus",
        "1",
        "--regions",
        "eu-west,eu-north",
        "--duration",
        "600",
        "--into",
    ];
    let (ok, _, err) = net.run(&user, &[&grow[..], &["7"]].concat());
    assert!(!ok && err.contains("no cluster 7"), "{err}");
    let grown = net.ok(&user, &[&grow[..], &["0"]].concat());
    assert_eq!(grown["cluster"], 0, "{grown}");
    let listed = net.ok(&user, &["cluster", "list"]);
    assert_eq!(
        (&listed[0]["leases"], &listed[0]["gpus"]),
        (&4.into(), &6.into())
    );

    let closed = net.ok(&user, &["cluster", "close", "0"]);
    assert_eq!(closed["closed"].as_array().unwrap().len(), 4, "{closed}");
    assert!(closed["refunded"].as_u64().unwrap() > 0);
    assert!(
        net.ok(&user, &["cluster", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    net.stop();
}
