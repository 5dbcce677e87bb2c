use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use gpunet_keeper::{InMemoryLeases, InMemoryRegistry, KeeperConfig, KeeperHandle, LeaseInfo};
use gpunet_proto::v1 as pb;
use gpunet_task_client::Client;
use gpunet_worker::{DeclaredGpus, WorkerConfig, WorkerHandle};
use tokio_util::sync::CancellationToken;

pub const PROVIDER: &str = "provider-1";
pub const LEASE: &str = "lease-1";

pub fn key(seed: u64) -> SigningKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b[31] = 7;
    SigningKey::from_bytes(&b)
}

pub fn test_config() -> KeeperConfig {
    KeeperConfig {
        listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        db_path: String::new(),
        heartbeat_interval: Duration::from_millis(100),
        dead_after: Duration::from_millis(600),
        ..KeeperConfig::default()
    }
}

pub struct Env {
    pub keeper: KeeperHandle,
    pub registry: Arc<InMemoryRegistry>,
    pub leases: Arc<InMemoryLeases>,
    pub user: SigningKey,
    pub workers: Vec<WorkerHandle>,
    pub tmp: tempfile::TempDir,
    /// How the workers added from now on run process tasks.
    pub sandbox: gpunet_worker::SandboxMode,
    next_worker: u64,
}

impl Env {
    pub async fn start(cfg: KeeperConfig, lease_gpus: u32) -> Env {
        let registry = Arc::new(InMemoryRegistry::new());
        let leases = Arc::new(InMemoryLeases::new());
        let user = key(1);
        leases.insert(LeaseInfo {
            lease_id: LEASE.into(),
            user: user.verifying_key().to_bytes(),
            provider: PROVIDER.into(),
            gpus: lease_gpus,
        });
        let keeper = gpunet_keeper::start(
            cfg,
            registry.clone(),
            leases.clone(),
            CancellationToken::new(),
        )
        .await
        .expect("keeper starts");
        Env {
            keeper,
            registry,
            leases,
            user,
            workers: Vec::new(),
            tmp: tempfile::tempdir().expect("tmp"),
            sandbox: gpunet_worker::SandboxMode::Auto,
            next_worker: 1000,
        }
    }

    pub fn worker_config(&mut self, gpus: u32, cpus: u32) -> WorkerConfig {
        self.next_worker += 1;
        let k = key(self.next_worker);
        self.registry.allow(PROVIDER, k.verifying_key().to_bytes());
        let mut c = WorkerConfig::new(&self.keeper.url(), PROVIDER, k);
        c.declared_gpus = Some(DeclaredGpus {
            count: gpus,
            model: "H100-sim".into(),
            memory_bytes: 80 << 30,
        });
        c.milli_cpus = cpus * 1000;
        c.work_dir = self.tmp.path().join(format!("w{}", self.next_worker));
        c.backoff_max = Duration::from_millis(200);
        c.drain_timeout = Duration::from_secs(5);
        c.sandbox = self.sandbox;
        c
    }

    /// Add a worker and wait until it is in the cluster.
    pub async fn add_worker(&mut self, gpus: u32, cpus: u32) -> usize {
        let c = self.worker_config(gpus, cpus);
        let before = self.keeper.core().connected_workers();
        self.workers.push(gpunet_worker::spawn(c));
        wait_until(Duration::from_secs(10), || {
            self.keeper.core().connected_workers() > before
        })
        .await;
        self.workers.len() - 1
    }

    /// Shut the keeper down and start a new one with `cfg` on the same address (same
    /// database when `cfg.db_path` is set). Workers keep running and reconnect by themselves;
    /// sessions are per keeper process, so open a new client.
    pub async fn restart(self, mut cfg: KeeperConfig) -> Env {
        let addr = self.keeper.addr;
        self.keeper.shutdown().await.expect("keeper stops");
        cfg.listen = addr.to_string();
        let keeper = gpunet_keeper::start(
            cfg,
            self.registry.clone(),
            self.leases.clone(),
            CancellationToken::new(),
        )
        .await
        .expect("keeper restarts");
        Env { keeper, ..self }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.keeper.url(), LEASE, &self.user)
            .await
            .expect("session")
    }
}

pub async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The worker task `id` runs on, once it runs (within 30 s).
pub async fn running_on(c: &gpunet_task_client::Client, id: u64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = c.status(&[id]).await.unwrap().remove(0);
        if st.state == pb::TaskState::Running as i32 && !st.worker_id.is_empty() {
            return st.worker_id;
        }
        assert!(tokio::time::Instant::now() < deadline, "task never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
