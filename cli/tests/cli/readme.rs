//! The README's "A first session", run command by command exactly as printed there: this test
//! reads README.md (the one source of truth), so the README cannot drift from the CLI.
//!
//! Only what a reader fills in is substituted: `<USER_WALLET>` (the address of `user.json`)
//! and `<PROVIDER_WALLET>` (the default wallet's). The session runs in a fresh directory with
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

#[test]
fn test_cli_readme_first_session_runs_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (rpc, ws) = (free_port(), free_port());
    let env = [
        ("HOME", dir.display().to_string()),
        ("GPUNET_URL", format!("http://127.0.0.1:{rpc}")),
        ("GPUNET_LOCALNET_RPC_PORT", rpc.to_string()),
        ("GPUNET_LOCALNET_WS_PORT", ws.to_string()),
        ("GPUNET_LOG", "warn".to_string()),
    ];
    let commands = first_session();
    assert!(commands.len() >= 5, "{commands:?}");
    // The background localnet and its stdout (kept open: it prints again when it stops).
    let mut localnet: Option<(Child, BufReader<ChildStdout>)> = None;
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
            .env_remove("GPUNET_KEYPAIR");
        if background {
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
        let out = cmd.output().expect("run gpunet");
        assert!(
            out.status.success(),
            "README command failed: {line}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_stdout = String::from_utf8_lossy(&out.stdout).to_string();
    }
    // The session ends listing the user's leases as JSON: the one it opened.
    let leases: serde_json::Value = serde_json::from_str(&last_stdout).expect("JSON");
    assert_eq!(leases.as_array().map(Vec::len), Some(1), "{last_stdout}");
    assert_eq!(leases[0]["user"], address(&dir.join("user.json")).as_str());

    let (mut net, _stdout) = localnet.expect("the session starts a localnet");
    let pid = net.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(net.wait().unwrap().success());
}
