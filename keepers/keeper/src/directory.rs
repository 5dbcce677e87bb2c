//! Where the keeper learns which workers may join and who owns which lease.
//!
//! On chain these come from the provider accounts (worker keys) and lease accounts (user,
//! provider, GPUs). The dispatch core only sees these two traits; the in-memory implementations
//! serve tests, benchmarks and `gpunet keeper run --offline`; the chain-backed one is
//! `crate::chain::ChainDirectory`.

use std::collections::{HashMap, HashSet};

use parking_lot::RwLock;

/// Which worker keys may join for which provider.
pub trait WorkerRegistry: Send + Sync + 'static {
    /// Whether `worker_key` (ed25519 public key) is listed for `provider`.
    fn is_allowed(&self, provider: &str, worker_key: &[u8; 32]) -> bool;
}

/// A lease as the keeper needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Lease id.
    pub lease_id: String,
    /// The user's ed25519 public key: the only key that may open sessions on the lease.
    pub user: [u8; 32],
    /// Provider whose workers form the lease's cluster.
    pub provider: String,
    /// GPUs leased.
    pub gpus: u32,
}

/// Which user owns which lease, and its provider and GPU count.
pub trait LeaseDirectory: Send + Sync + 'static {
    /// A lease by id.
    fn lease(&self, lease_id: &str) -> Option<LeaseInfo>;
    /// Active leases served by a provider.
    fn leases_for_provider(&self, provider: &str) -> Vec<LeaseInfo>;
}

/// In-memory [`WorkerRegistry`].
#[derive(Default)]
pub struct InMemoryRegistry {
    keys: RwLock<HashMap<String, HashSet<[u8; 32]>>>,
}

impl InMemoryRegistry {
    /// Empty registry.
    pub fn new() -> Self {
        Self::default()
    }
    /// List `key` for `provider`.
    pub fn allow(&self, provider: &str, key: [u8; 32]) {
        self.keys
            .write()
            .entry(provider.to_string())
            .or_default()
            .insert(key);
    }
}

impl WorkerRegistry for InMemoryRegistry {
    fn is_allowed(&self, provider: &str, worker_key: &[u8; 32]) -> bool {
        self.keys
            .read()
            .get(provider)
            .is_some_and(|s| s.contains(worker_key))
    }
}

/// In-memory [`LeaseDirectory`].
#[derive(Default)]
pub struct InMemoryLeases {
    leases: RwLock<HashMap<String, LeaseInfo>>,
}

impl InMemoryLeases {
    /// Empty directory.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add or replace a lease.
    pub fn insert(&self, lease: LeaseInfo) {
        self.leases.write().insert(lease.lease_id.clone(), lease);
    }
    /// Remove a lease (it ended); true if it was listed. The core is told separately
    /// ([`crate::core::Core::end_lease`]), as the chain side does.
    pub fn remove(&self, lease_id: &str) -> bool {
        self.leases.write().remove(lease_id).is_some()
    }
}

impl LeaseDirectory for InMemoryLeases {
    fn lease(&self, lease_id: &str) -> Option<LeaseInfo> {
        self.leases.read().get(lease_id).cloned()
    }
    fn leases_for_provider(&self, provider: &str) -> Vec<LeaseInfo> {
        let mut v: Vec<LeaseInfo> = self
            .leases
            .read()
            .values()
            .filter(|l| l.provider == provider)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
        v
    }
}
