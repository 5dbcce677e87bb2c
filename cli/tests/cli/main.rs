//! CLI tests: the real `gpunet` binary.

mod chain;
mod chain_sigkill;
mod commands;
mod explorer;
mod keys;
mod readme;
mod sigkill;
mod zones;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ed25519_dalek::SigningKey;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn b58(k: &SigningKey) -> String {
    bs58::encode(k.verifying_key().as_bytes()).into_string()
}

/// Writes `k` as a Solana JSON keypair file.
pub fn write_key(path: &Path, k: &SigningKey) {
    gpunet_sdk::task::keys::write_keypair_file(path, k, true).unwrap();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Keeper config with one provider (worker keys) and one lease.
pub fn keeper_config(
    dir: &Path,
    port: u16,
    user: &SigningKey,
    workers: &[&SigningKey],
) -> std::path::PathBuf {
    let keys: Vec<String> = workers.iter().map(|k| format!("\"{}\"", b58(k))).collect();
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\nmetrics_listen = \"\"\ndb_path = \"{db}\"\ndead_after = \"1s\"\nheartbeat_interval = \"100ms\"\n\n\
         [[providers]]\nid = \"prov\"\nworker_keys = [{keys}]\n\n[[leases]]\nid = \"lease-1\"\nuser = \"{user}\"\nprovider = \"prov\"\ngpus = 4\n",
        db = dir.join("keeper.redb").display(),
        keys = keys.join(", "),
        user = b58(user),
    );
    let p = dir.join("keeper.toml");
    std::fs::write(&p, text).unwrap();
    p
}

pub fn spawn_keeper(config: &Path) -> Child {
    spawn_keeper_env(config, &[])
}

/// `spawn_keeper` with extra environment (e.g. `GPUNET_KEEPER_DURABILITY`). The keeper signs
/// with `keeper.json` beside the config (its wallet; written if missing).
pub fn spawn_keeper_env(config: &Path, env: &[(&str, &str)]) -> Child {
    let wallet = config.with_file_name("keeper.json");
    if !wallet.exists() {
        write_key(&wallet, &key(200));
    }
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["keeper", "run", "--offline", "--config"])
        .arg(config)
        .arg("--keypair")
        .arg(&wallet)
        .envs(env.iter().copied())
        .env("GPUNET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn keeper")
}

pub async fn connect(url: &str, user: &SigningKey) -> gpunet_sdk::task::Client {
    for _ in 0..200 {
        if let Ok(c) = gpunet_sdk::task::Client::connect(url, "lease-1", user).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("keeper did not come up at {url}");
}
