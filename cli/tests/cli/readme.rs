//! The README's "A first session", run command by command exactly as printed there: this test
//! reads README.md (the one source of truth), so the README cannot drift from the CLI.
//!
//! Only what a reader fills in is substituted: `<USER_WALLET>` (the address of `user.json`),
//! `<PROVIDER_WALLET>` (the default wallet's) and `<LEASE>` (the address `lease list` printed). The session runs in a fresh directory with
//! its own `HOME` (so `~/.config/solana/id.json` is the session's), and the environment points
//! the default URL and the localnet's ports at free ports (`GPUNET_URL`,
//! `GPUNET_LOCALNET_RPC_PORT`, `GPUNET_LOCALNET_WS_PORT`) so parallel tests do not collide.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::free_port;

/// The commands of the README's "A first session" block, continuation lines joined and
/// comments dropped.
fn first_session() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("## A first session")
        .nth(1)
        .expect("README has a first session");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in the first session");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or("").trim_end();
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let cmd = current.split_whitespace().collect::<Vec<_>>().join(" ");
                if !cmd.is_empty() {
                    commands.push(cmd);
                }
                current.clear();
            }
        }
    }
    commands
}

fn address(keypair: &Path) -> String {
    let key = gpunet_sdk::task::keys::read_keypair_file(keypair).unwrap_or_else(|e| panic!("{e}"));
    gpunet_sdk::task::keys::pubkey_string(&key.verifying_key())
}

/// Background daemons, killed if the test ends early.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for d in &mut self.0 {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// Waits until something accepts TCP connections on `port` (a daemon started in the
/// background is listening).
fn wait_listening(port: u16, what: &str) {
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} never listened on port {port}");
}

#[test]
fn test_cli_readme_first_session_runs_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (rpc, ws, keeper) = (free_port(), free_port(), free_port());
    // What a reader on a fresh machine gets from the defaults (8899, 8900, 7400, 7401),
    // moved to free ports so that tests running side by side do not collide.
    let env = [
        ("HOME", dir.display().to_string()),
        ("GPUNET_URL", format!("http://127.0.0.1:{rpc}")),
        ("GPUNET_LOCALNET_RPC_PORT", rpc.to_string()),
        ("GPUNET_LOCALNET_WS_PORT", ws.to_string()),
        ("GPUNET_LOCALNET_KEEPER_PORT", "0".to_string()),
        ("GPUNET_LOCALNET_EXPLORER_PORT", "0".to_string()),
        (
            "GPUNET_KEEPER_ENDPOINT",
            format!("http://127.0.0.1:{keeper}"),
        ),
        ("GPUNET_KEEPER_LISTEN", format!("127.0.0.1:{keeper}")),
        ("GPUNET_KEEPER_METRICS_LISTEN", String::new()),
        ("GPUNET_KEEPER_WS_URL", format!("ws://127.0.0.1:{ws}")),
        ("GPUNET_LOG", "warn".to_string()),
    ];
    let commands = first_session();
    assert!(commands.len() >= 5, "{commands:?}");
    // The background localnet and its stdout (kept open: it prints again when it stops).
    let mut localnet: Option<(Child, BufReader<ChildStdout>)> = None;
    // Other background daemons (keeper, worker), stopped at the end (killed if the test fails).
    let mut daemons = Daemons(Vec::new());
    let mut lease = None::<String>;
    let mut last_stdout = String::new();
    for line in &commands {
        let mut line = line.clone();
        for (placeholder, keypair) in [
            ("<USER_WALLET>", "user.json"),
            ("<PROVIDER_WALLET>", ".config/solana/id.json"),
        ] {
            if line.contains(placeholder) {
                line = line.replace(placeholder, &address(&dir.join(keypair)));
            }
        }
        if line.contains("<LEASE>") {
            let lease = lease
                .as_deref()
                .expect("a lease listed before <LEASE> is used");
            line = line.replace("<LEASE>", lease);
        }
        let (line, background) = match line.strip_suffix('&') {
            Some(l) => (l.trim_end().to_string(), true),
            None => (line, false),
        };
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("gpunet"), "not a gpunet command: {line}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpunet"));
        cmd.args(words)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("GPUNET_KEYPAIR")
            .env_remove("GPUNET_KEEPER_URL");
        if background && line.contains(" localnet") {
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn");
            // The first line comes once the chain serves and gpunet is initialised.
            let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
            let mut first = String::new();
            stdout.read_line(&mut first).expect("first line");
            assert!(first.contains("running"), "{line}: {first:?}");
            localnet = Some((child, stdout));
            continue;
        }
        if background {
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn");
            daemons.0.push(child);
            if line.contains("keeper run") {
                wait_listening(keeper, &line);
            }
            continue;
        }
        let out = cmd.output().expect("run gpunet");
        assert!(
            out.status.success(),
            "README command failed: {line}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if line.contains("lease list") {
            // The user's leases as JSON: the one it opened.
            let leases: serde_json::Value = serde_json::from_str(&last_stdout).expect("JSON");
            assert_eq!(leases.as_array().map(Vec::len), Some(1), "{last_stdout}");
            assert_eq!(leases[0]["user"], address(&dir.join("user.json")).as_str());
            lease = leases[0]["address"].as_str().map(str::to_string);
        }
    }
    assert!(lease.is_some(), "the session lists the lease it opened");
    // The session ends with the task's output, run by the provider's worker through the
    // keeper that the chain assigned to the lease.
    let mut lines = last_stdout.lines();
    assert!(
        lines.next().is_some_and(|l| l.contains("finished")),
        "{last_stdout:?}"
    );
    assert_eq!(lines.next(), Some("hello"), "{last_stdout:?}");

    for d in daemons.0.iter().rev() {
        Command::new("kill")
            .args(["-TERM", &d.id().to_string()])
            .status()
            .unwrap();
    }
    for mut d in std::mem::take(&mut daemons.0) {
        assert!(
            d.wait().unwrap().success(),
            "a daemon failed to stop gracefully"
        );
    }
    let (mut net, _stdout) = localnet.expect("the session starts a localnet");
    let pid = net.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(net.wait().unwrap().success());
}
