//! The worker's configuration ([`WorkerConfig`]) and its defaults.

use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use crate::cgroup::CgroupMode;
use crate::hw::DeclaredGpus;
use crate::sandbox::SandboxMode;

/// Worker configuration.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Keeper URL (`http://127.0.0.1:7400`).
    pub keeper_url: String,
    /// Provider this worker serves.
    pub provider: String,
    /// The worker's key (listed by the provider).
    pub key: SigningKey,
    /// Zone label.
    pub zone: String,
    /// Other labels tasks can select (`region`, `rack`, …; Ray's node labels).
    pub labels: std::collections::HashMap<String, String>,
    /// Declared GPUs (CPU-only mode); `None` = discover with CUDA.
    pub declared_gpus: Option<DeclaredGpus>,
    /// Offer only these of its GPUs (positions in the discovered or declared list) to this
    /// keeper, with the CPU and memory in proportion: a machine serving leases of several
    /// keepers gives each keeper a disjoint share. `None`: all of them.
    pub gpu_subset: Option<Vec<u32>>,
    /// CPUs offered, in thousandths.
    pub milli_cpus: u32,
    /// Memory offered.
    pub memory_bytes: u64,
    /// Where process tasks get their working directories.
    pub work_dir: PathBuf,
    /// Time limit of a process task that sets none.
    pub default_time_limit: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// How long to wait for running tasks when draining.
    pub drain_timeout: Duration,
    /// Most bytes of outputs held for fetching; the oldest are evicted beyond it (the keeper
    /// re-makes an evicted object from its task if it is needed again).
    pub object_store_bytes: u64,
    /// How long a proof task, after its last round, keeps its prover state waiting for the
    /// keeper's `ProofOpen` before it gives up (the task then fails).
    pub proof_open_timeout: Duration,
    /// Offer lanes (pipelining: the keeper may send short tasks ahead, to run one after another
    /// in a slot). Off, the keeper sends one task per free slot, as to a worker that predates
    /// lanes.
    pub lanes: bool,
    /// A standby connection: registers as alive and offers nothing (no GPUs, no tasks). A
    /// worker keeps one to each other committee member of its leases (see
    /// `gpunet_sdk::plan::standby_keepers`).
    pub standby: bool,
    /// Whether process tasks run sandboxed ([`sandbox`]).
    pub sandbox: SandboxMode,
    /// Whether a process task may ask for the network (`ProcessTask.network`).
    pub allow_network: bool,
    /// Whether process tasks get a cgroup each (memory and CPU enforced by the kernel,
    /// [`crate::cgroup`]).
    pub cgroups: CgroupMode,
}

impl WorkerConfig {
    /// Defaults: 4 CPUs, 16 GiB, work dir under the system temp dir, 1 h time limit, backoff
    /// 50 ms → 5 s, drain 30 s, 4 GiB of held outputs, 60 s wait for a proof's opening request.
    pub fn new(keeper_url: &str, provider: &str, key: SigningKey) -> Self {
        Self {
            keeper_url: keeper_url.to_string(),
            provider: provider.to_string(),
            key,
            zone: String::new(),
            declared_gpus: None,
            gpu_subset: None,
            labels: Default::default(),
            milli_cpus: 4000,
            memory_bytes: 16 << 30,
            work_dir: std::env::temp_dir().join("gpunet-worker"),
            default_time_limit: Duration::from_secs(3600),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            object_store_bytes: 4 << 30,
            proof_open_timeout: Duration::from_secs(60),
            lanes: true,
            standby: false,
            sandbox: SandboxMode::Auto,
            allow_network: true,
            cgroups: CgroupMode::Auto,
        }
    }
}
