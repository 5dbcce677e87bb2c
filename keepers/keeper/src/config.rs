//! Keeper configuration: a TOML file, then `GPUNET_KEEPER_*` environment overrides.
//!
//! Every field has a documented default, so an empty file is a valid configuration:
//!
//! ```toml
//! listen = "127.0.0.1:7400"        # gRPC (WorkerService, KeeperService, health, reflection)
//! metrics_listen = "127.0.0.1:7401" # Prometheus /metrics; "" disables
//! explorer_listen = ""              # chain mode: the explorer page of this keeper's leases
//!                                   #   (e.g. "127.0.0.1:7402"); "" disables
//! db_path = "gpunet-keeper.redb"    # "" = in-memory database (nothing survives a restart)
//! durability = "process"            # "process": acknowledged once written to the log: survives
//!                                   #   SIGKILL at any moment; the log is fdatasync'ed every
//!                                   #   sync_interval, so power loss can take that much;
//!                                   # "immediate": fdatasync before acknowledging (group
//!                                   #   commit; survives power loss; ~0.1-0.3 ms more per
//!                                   #   synchronous task on this project's disks);
//!                                   # "none": no log, redb checkpoints only (benchmarks)
//! sync_interval = "10ms"            # "process": how often the log is fdatasync'ed
//! checkpoint_interval = "1s"        # how often redb is committed durably and the log truncated
//! task_retention = "1h"             # finished tasks (and their objects) are forgotten this long
//!                                   # after they end, unless a running task still needs them;
//!                                   # "0s" keeps them forever
//! heartbeat_interval = "500ms"      # what workers are told to use
//! dead_after = "3s"                 # a worker silent this long is dead
//! inline_limit = 102400             # outputs up to this many bytes travel inline (Ray: 100 KiB)
//! default_max_retries = 3           # Ray's default
//! pipeline_depth = 4                # tasks queued on a worker behind each running short task
//!                                   #   (Ray's max_tasks_in_flight_per_worker); 0 = off
//! pipeline_below = "2ms"            # only tasks whose name recently ran shorter than this (in
//!                                   #   their class) are pipelined; long ones wait at the keeper
//! max_message_bytes = 67108864      # largest gRPC message accepted
//! session_ttl = "1h"                # idle client sessions expire
//! # keeper_key = "keeper.json"      # the keeper's on-chain wallet, a Solana JSON keypair file
//!                                   #   (`gpunet keeper run` sets it from --keypair, default
//!                                   #   ~/.config/solana/id.json); absent = fresh key per start
//! proof_interval_s = 0              # benchmark-prove every cluster member this often; 0 = off
//! proof_n = 16384                   # challenge matrix side for GPU workers (CPU-only: ≤ 256)
//! proof_rounds = 64                 # challenge rounds for GPU workers (CPU-only: ≤ 8)
//! proof_timeout = "60s"             # bound on each proof wait (assignment, each round, opening)
//! reconcile_every = "5s"            # chain mode: full read of providers and leases this often
//!                                   #   (pubsub brings changes sooner; this catches what it missed)
//! ws_url = ""                       # chain mode: pubsub websocket; "" = the RPC URL's host,
//!                                   #   port + 1, as the Solana CLI derives it
//! audit_every = "30s"               # chain mode: re-verify other committee members' new
//!                                   #   checkpoints this often
//! audit_sample = 0.25               # chain mode: share of their checkpoints re-verified (0..1)
//! transcript_window = "10m"         # chain mode: a checkpoint's transcript still unavailable
//!                                   #   this long after its period's end is slashable
//!
//! # Offline mode only (`gpunet keeper run --offline`: tests and benchmarks without a chain);
//! # in chain mode providers and leases come from their accounts.
//! [[providers]]                     # in-memory WorkerRegistry
//! id = "provider-1"
//! worker_keys = ["<base58 ed25519 public key>"]
//!
//! [[leases]]                        # in-memory LeaseDirectory
//! id = "lease-1"
//! user = "<base58 ed25519 public key>"
//! provider = "provider-1"
//! gpus = 8
//! ```
//!
//! Environment overrides: `GPUNET_KEEPER_LISTEN`, `GPUNET_KEEPER_METRICS_LISTEN`,
//! `GPUNET_KEEPER_DB_PATH`, `GPUNET_KEEPER_DURABILITY`, `GPUNET_KEEPER_SYNC_INTERVAL`,
//! `GPUNET_KEEPER_CHECKPOINT_INTERVAL`, `GPUNET_KEEPER_TASK_RETENTION`,
//! `GPUNET_KEEPER_HEARTBEAT_INTERVAL`,
//! `GPUNET_KEEPER_DEAD_AFTER`, `GPUNET_KEEPER_INLINE_LIMIT`, `GPUNET_KEEPER_DEFAULT_MAX_RETRIES`,
//! `GPUNET_KEEPER_KEEPER_KEY`, `GPUNET_KEEPER_PROOF_INTERVAL_S`, `GPUNET_KEEPER_PROOF_N`,
//! `GPUNET_KEEPER_PROOF_ROUNDS`, `GPUNET_KEEPER_PROOF_TIMEOUT`, `GPUNET_KEEPER_RECONCILE_EVERY`,
//! `GPUNET_KEEPER_WS_URL`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::directory::{InMemoryLeases, InMemoryRegistry, LeaseInfo};
use crate::error::KeeperError;

/// What an acknowledgement (an accepted task, a visible completion) is guaranteed to survive.
/// `store.rs` explains the write-ahead log behind it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `fdatasync` of the log before acknowledging (group commit): survives SIGKILL, an OS
    /// crash and power loss.
    Immediate,
    /// Acknowledged once appended to the log with `write(2)`: survives SIGKILL (the kernel holds
    /// the bytes); an OS crash or power loss can lose the last `sync_interval`. The default:
    /// it is the guarantee the keeper promises (a keeper killed at any moment finishes every
    /// accepted task once), and the money itself is on chain, not in this database.
    #[default]
    Process,
    /// No log: redb checkpoints only. A crash loses everything since the last checkpoint;
    /// for benchmarks that want to see the cost of durability.
    None,
}

impl std::str::FromStr for Durability {
    type Err = KeeperError;
    fn from_str(s: &str) -> Result<Self, KeeperError> {
        match s {
            "immediate" => Ok(Durability::Immediate),
            "process" => Ok(Durability::Process),
            "none" => Ok(Durability::None),
            o => Err(KeeperError::Config(format!(
                "durability: unknown value {o:?} (immediate, process or none)"
            ))),
        }
    }
}

/// Keeper configuration (see the module docs for the TOML form and defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeeperConfig {
    /// gRPC listen address.
    pub listen: String,
    /// Prometheus listen address; empty disables.
    pub metrics_listen: String,
    /// Chain mode: where the explorer page of this keeper's leases is served; empty disables.
    pub explorer_listen: String,
    /// Database file; empty = in-memory.
    pub db_path: String,
    /// What an acknowledgement survives.
    pub durability: Durability,
    /// `process` durability: interval between `fdatasync`s of the log.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Interval between durable redb checkpoints (the log is truncated at each).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// How long a finished task and its objects are kept; zero keeps them forever.
    #[serde(with = "humantime_serde")]
    pub task_retention: Duration,
    /// Tasks queued on a worker behind each running task of a short-running class; 0 = off.
    pub pipeline_depth: u32,
    /// A task is pipelined while its name's recent mean run time (in its class) is below this.
    #[serde(with = "humantime_serde")]
    pub pipeline_below: Duration,
    /// Heartbeat interval told to workers.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Silence after which a worker is declared dead.
    #[serde(with = "humantime_serde")]
    pub dead_after: Duration,
    /// Largest output returned inline.
    pub inline_limit: u64,
    /// Default `max_retries` of a task.
    pub default_max_retries: u32,
    /// Largest gRPC message accepted.
    pub max_message_bytes: usize,
    /// Idle lifetime of a client session.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Path of the keeper's wallet, a Solana JSON keypair file (the key its on-chain keeper
    /// account is registered with); absent = a fresh key per start (in-process tests).
    pub keeper_key: Option<String>,
    /// Seconds between periodic benchmark proofs of every cluster member; 0 = off.
    pub proof_interval_s: u64,
    /// Challenge matrix side `n` for GPU workers (CPU-only workers get at most 256).
    pub proof_n: u32,
    /// Challenge rounds `K` for GPU workers (CPU-only workers get at most 8).
    pub proof_rounds: u32,
    /// Bound on each wait of a proof: assignment, each round commit, the opening.
    #[serde(with = "humantime_serde")]
    pub proof_timeout: Duration,
    /// Chain mode: interval between full reads of the chain.
    #[serde(with = "humantime_serde")]
    pub reconcile_every: Duration,
    /// Chain mode: the pubsub websocket URL; empty = derived from the RPC URL.
    pub ws_url: String,
    /// Chain mode: interval between audits of other committee members' checkpoints.
    #[serde(with = "humantime_serde")]
    pub audit_every: Duration,
    /// Chain mode: share of other members' checkpoints re-verified (0..=1).
    pub audit_sample: f64,
    /// Chain mode: how long after a period's end its checkpoint's transcript may be missing
    /// before the committee slashes the keeper that posted it.
    #[serde(with = "humantime_serde")]
    pub transcript_window: Duration,
    /// Providers and their worker keys (in-memory registry).
    pub providers: Vec<ProviderEntry>,
    /// Leases (in-memory lease directory).
    pub leases: Vec<LeaseEntry>,
}

/// A provider and the worker keys it lists.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    /// Provider id.
    pub id: String,
    /// Worker public keys, base58.
    pub worker_keys: Vec<String>,
}

/// A lease.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseEntry {
    /// Lease id.
    pub id: String,
    /// User public key, base58.
    pub user: String,
    /// Provider id.
    pub provider: String,
    /// GPUs leased.
    pub gpus: u32,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7400".into(),
            metrics_listen: "127.0.0.1:7401".into(),
            explorer_listen: String::new(),
            db_path: "gpunet-keeper.redb".into(),
            durability: Durability::Process,
            sync_interval: Duration::from_millis(10),
            checkpoint_interval: Duration::from_secs(1),
            task_retention: Duration::from_secs(3600),
            pipeline_depth: 4,
            pipeline_below: Duration::from_millis(2),
            heartbeat_interval: Duration::from_millis(500),
            dead_after: Duration::from_secs(3),
            inline_limit: 100 * 1024,
            default_max_retries: 3,
            max_message_bytes: 64 << 20,
            session_ttl: Duration::from_secs(3600),
            keeper_key: None,
            proof_interval_s: 0,
            proof_n: 16_384,
            proof_rounds: 64,
            proof_timeout: Duration::from_secs(60),
            reconcile_every: Duration::from_secs(5),
            ws_url: String::new(),
            audit_every: Duration::from_secs(30),
            audit_sample: 0.25,
            transcript_window: Duration::from_secs(600),
            providers: Vec::new(),
            leases: Vec::new(),
        }
    }
}

fn parse_duration(name: &str, v: &str) -> Result<Duration, KeeperError> {
    humantime_serde::re::humantime::parse_duration(v)
        .map_err(|e| KeeperError::Config(format!("{name}: {e}")))
}

/// Decode a base58 32-byte public key.
pub fn decode_key(s: &str) -> Result<[u8; 32], KeeperError> {
    let v = bs58::decode(s)
        .into_vec()
        .map_err(|e| KeeperError::Config(format!("key {s}: {e}")))?;
    v.try_into()
        .map_err(|_| KeeperError::Config(format!("key {s}: not 32 bytes")))
}

impl KeeperConfig {
    /// Parse TOML text (no environment overrides).
    pub fn from_toml(text: &str) -> Result<Self, KeeperError> {
        let cfg: Self = toml::from_str(text).map_err(|e| KeeperError::Config(e.to_string()))?;
        if !(0.0..=1.0).contains(&cfg.audit_sample) {
            return Err(KeeperError::Config(format!(
                "audit_sample: {} is not in 0..=1",
                cfg.audit_sample
            )));
        }
        Ok(cfg)
    }

    /// Read a file (if given) and apply the environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, KeeperError> {
        let mut cfg = match path {
            Some(p) => Self::from_toml(&std::fs::read_to_string(p)?)?,
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Apply `GPUNET_KEEPER_*` overrides from a lookup function.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), KeeperError> {
        let num = |name: &str, v: String| -> Result<u64, KeeperError> {
            v.parse()
                .map_err(|e| KeeperError::Config(format!("{name}: {e}")))
        };
        if let Some(v) = get("GPUNET_KEEPER_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("GPUNET_KEEPER_METRICS_LISTEN") {
            self.metrics_listen = v;
        }
        if let Some(v) = get("GPUNET_KEEPER_EXPLORER_LISTEN") {
            self.explorer_listen = v;
        }
        if let Some(v) = get("GPUNET_KEEPER_DB_PATH") {
            self.db_path = v;
        }
        if let Some(v) = get("GPUNET_KEEPER_DURABILITY") {
            self.durability = v.parse()?;
        }
        if let Some(v) = get("GPUNET_KEEPER_SYNC_INTERVAL") {
            self.sync_interval = parse_duration("sync_interval", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_CHECKPOINT_INTERVAL") {
            self.checkpoint_interval = parse_duration("checkpoint_interval", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_TASK_RETENTION") {
            self.task_retention = parse_duration("task_retention", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_PIPELINE_DEPTH") {
            self.pipeline_depth = num("pipeline_depth", v)?
                .try_into()
                .map_err(|_| KeeperError::Config("pipeline_depth: too large".into()))?;
        }
        if let Some(v) = get("GPUNET_KEEPER_PIPELINE_BELOW") {
            self.pipeline_below = parse_duration("pipeline_below", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_HEARTBEAT_INTERVAL") {
            self.heartbeat_interval = parse_duration("heartbeat_interval", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_DEAD_AFTER") {
            self.dead_after = parse_duration("dead_after", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_INLINE_LIMIT") {
            self.inline_limit = num("inline_limit", v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_DEFAULT_MAX_RETRIES") {
            self.default_max_retries = num("default_max_retries", v)? as u32;
        }
        if let Some(v) = get("GPUNET_KEEPER_KEEPER_KEY") {
            self.keeper_key = Some(v);
        }
        if let Some(v) = get("GPUNET_KEEPER_PROOF_INTERVAL_S") {
            self.proof_interval_s = num("proof_interval_s", v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_PROOF_N") {
            self.proof_n = num("proof_n", v)? as u32;
        }
        if let Some(v) = get("GPUNET_KEEPER_PROOF_ROUNDS") {
            self.proof_rounds = num("proof_rounds", v)? as u32;
        }
        if let Some(v) = get("GPUNET_KEEPER_PROOF_TIMEOUT") {
            self.proof_timeout = parse_duration("proof_timeout", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_RECONCILE_EVERY") {
            self.reconcile_every = parse_duration("reconcile_every", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_WS_URL") {
            self.ws_url = v;
        }
        if let Some(v) = get("GPUNET_KEEPER_AUDIT_EVERY") {
            self.audit_every = parse_duration("audit_every", &v)?;
        }
        if let Some(v) = get("GPUNET_KEEPER_AUDIT_SAMPLE") {
            self.audit_sample = v
                .parse::<f64>()
                .ok()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| {
                    KeeperError::Config(format!("audit_sample: {v:?} is not a number in 0..=1"))
                })?;
        }
        if let Some(v) = get("GPUNET_KEEPER_TRANSCRIPT_WINDOW") {
            self.transcript_window = parse_duration("transcript_window", &v)?;
        }
        Ok(())
    }

    /// The benchmark-proof settings (`proof_n`, `proof_rounds`, `proof_timeout`).
    pub fn proof_settings(&self) -> ProofSettings {
        ProofSettings {
            n: self.proof_n,
            rounds: self.proof_rounds,
            timeout: self.proof_timeout,
        }
    }

    /// Build the in-memory registry and lease directory from `providers` and `leases`.
    pub fn directories(&self) -> Result<(InMemoryRegistry, InMemoryLeases), KeeperError> {
        let reg = InMemoryRegistry::new();
        for p in &self.providers {
            for k in &p.worker_keys {
                reg.allow(&p.id, decode_key(k)?);
            }
        }
        let leases = InMemoryLeases::new();
        for l in &self.leases {
            leases.insert(LeaseInfo {
                lease_id: l.id.clone(),
                user: decode_key(&l.user)?,
                provider: l.provider.clone(),
                gpus: l.gpus,
            });
        }
        Ok((reg, leases))
    }
}

/// What the keeper's challenges look like and how long it waits (from `KeeperConfig`).
#[derive(Clone, Debug)]
pub struct ProofSettings {
    /// Matrix side `n` for GPU workers (`inner = n`).
    pub n: u32,
    /// Rounds `K` for GPU workers.
    pub rounds: u32,
    /// Bound on each wait: for the assignment, for each commit, for the opening.
    pub timeout: Duration,
}

impl Default for ProofSettings {
    fn default() -> Self {
        let p = gpunet_proof::ChallengeParams::default();
        Self {
            n: p.n,
            rounds: p.rounds,
            timeout: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults_and_env_overrides() {
        let mut c = KeeperConfig::from_toml("").unwrap();
        assert_eq!(c.dead_after, Duration::from_secs(3));
        assert_eq!(c.default_max_retries, 3);
        c.apply_env(|k| match k {
            "GPUNET_KEEPER_DEAD_AFTER" => Some("250ms".into()),
            "GPUNET_KEEPER_DURABILITY" => Some("none".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.dead_after, Duration::from_millis(250));
        assert_eq!(c.durability, Durability::None);
        assert!(KeeperConfig::from_toml("bogus = 1").is_err());
        let c =
            KeeperConfig::from_toml("durability = \"process\"\ntask_retention = \"0s\"\n").unwrap();
        assert_eq!(c.durability, Durability::Process);
        assert_eq!(c.task_retention, Duration::ZERO);
        let err = KeeperConfig::from_toml("durability = \"fast\"").unwrap_err();
        assert!(err.to_string().contains("durability"), "{err}");
        let mut c = KeeperConfig::default();
        let err = c
            .apply_env(|k| (k == "GPUNET_KEEPER_DURABILITY").then(|| "fast".into()))
            .unwrap_err();
        assert!(
            err.to_string().contains("immediate, process or none"),
            "{err}"
        );
    }

    #[test]
    fn durations_are_human_readable() {
        let c = KeeperConfig::from_toml("dead_after = \"1s 500ms\"\n").unwrap();
        assert_eq!(c.dead_after, Duration::from_millis(1500));
    }
}
