//! `gpunet localnet` as a real process, driven by the chain commands over JSON-RPC:
//! a provider registers and stakes, a keeper registers, a user opens, tops up and closes a
//! lease; bad input gets a clear error and a non-zero exit; SIGTERM stops the localnet cleanly
//! and a restart on the same `--ledger` finds everything again.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub(crate) struct Localnet {
    child: Child,
    pub url: String,
}

pub(crate) fn start_localnet(dir: &Path, keypair: &Path) -> (Localnet, Value) {
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
        .arg("--ledger")
        .arg(dir.join("ledger"))
        .arg("--keypair")
        .arg(keypair)
        .env("GPUNET_LOG", "warn")
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
    let closed = net.ok(&user, &["lease", "close", &lease]);
    assert_eq!(closed["refunded"], 14_000);
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
