//! The chain watcher: keeps a [`ChainDirectory`] in step with the program and tells the core
//! when a lease it serves has ended.
//!
//! Two sources, because either alone is not enough: the pubsub websocket
//! (`programSubscribe`, through `gpunet_sdk::watch`) brings each account change within a
//! slot or two, and a full read every `reconcile_every` (every provider, the leases naming
//! this keeper, the chain's clock) catches whatever a dropped connection or a restart missed —
//! and expiry, which is a matter of time, not of any account changing. A failed read is
//! counted and retried at the next tick; the websocket reconnects with backoff.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gpunet_sdk::watch::{ProgramAccount, follow_program, websocket_url};
use gpunet_sdk::{GpunetClient, LeaseFilter, ProviderFilter, SdkError};
use solana_sdk::pubkey::Pubkey;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::directory::{ChainClock, ChainDirectory, Ended};
use crate::core::Core;
use crate::directory::LeaseDirectory;
use crate::proofs::Anchor;

/// Where and how often the watcher reads.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Pubsub websocket URL; `None`: the Solana CLI's rule (same host, port + 1).
    pub ws_url: Option<String>,
    /// Full reads this often.
    pub reconcile_every: Duration,
}

/// Reads the chain into a [`ChainDirectory`].
pub struct Watcher {
    client: GpunetClient,
    ws_url: String,
    dir: Arc<ChainDirectory>,
    every: Duration,
}

impl Watcher {
    /// A watcher filling `dir`.
    pub fn new(config: &WatchConfig, dir: Arc<ChainDirectory>) -> Self {
        Watcher {
            client: GpunetClient::new(config.rpc_url.clone()),
            ws_url: config
                .ws_url
                .clone()
                .unwrap_or_else(|| websocket_url(&config.rpc_url)),
            dir,
            every: config.reconcile_every.max(Duration::from_millis(100)),
        }
    }

    /// One full read: the clock, every provider, the leases naming this keeper, and each
    /// lease served before that the read no longer lists. Returns what stopped being served.
    pub async fn reconcile(&self) -> Result<Vec<(Pubkey, Ended)>, SdkError> {
        let config = self.client.config().await?;
        let now = self.client.chain_time().await?;
        let clock = ChainClock {
            now,
            paused_now: config.paused_seconds_at(now).unwrap_or(i64::MAX),
        };
        let providers = self.client.providers(&ProviderFilter::default()).await?;
        let leases = self
            .client
            .leases(LeaseFilter::Keeper(self.dir.keeper()))
            .await?;
        let (slot, slot_hash, epoch) = self.client.recent_slot_hash().await?;
        self.dir.set_anchor(Anchor {
            slot,
            slot_hash,
            epoch,
        });
        let (mut ended, unlisted) = self.dir.reconcile(providers, leases, clock);
        for address in unlisted {
            let lease = match self.client.lease(&address).await {
                Ok(l) => Some(l),
                Err(SdkError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(why) = self.dir.update_lease(address, lease) {
                ended.push((address, why));
            }
        }
        Ok(ended)
    }

    /// Runs until `cancel`: a full read every `reconcile_every` and the pubsub stream between;
    /// each lease that ends is ended on `core`.
    pub fn spawn(self, core: Arc<Core>, cancel: CancellationToken) -> JoinHandle<()> {
        let this = Arc::new(self);
        let follow = tokio::spawn(this.clone().follow(core.clone(), cancel.clone()));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match this.reconcile().await {
                    Ok(ended) => {
                        for (lease, why) in ended {
                            end(&core, &lease, &why);
                        }
                        form_clusters(&this.dir, &core);
                        sync_gpus(&this.dir, &core);
                    }
                    Err(e) => {
                        core.metrics.chain_read_errors.inc();
                        warn!(error = %e, "chain read failed; retrying at the next tick");
                    }
                }
                core.metrics
                    .leases_served
                    .set(this.dir.served_leases().len() as i64);
            }
            let _ = follow.await;
        })
    }

    async fn follow(self: Arc<Self>, core: Arc<Core>, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let dir = self.dir.clone();
            let core2 = core.clone();
            let commitment = self.client.rpc().commitment();
            let run = follow_program(
                &self.ws_url,
                commitment,
                move |address, account| match account {
                    ProgramAccount::Lease(l) => match dir.update_lease(address, Some(*l)) {
                        Some(why) => end(&core2, &address, &why),
                        None => {
                            form_clusters(&dir, &core2);
                            sync_gpus(&dir, &core2);
                        }
                    },
                    ProgramAccount::Provider(p) => dir.update_provider(address, Some(*p)),
                    ProgramAccount::Closed => {
                        dir.update_provider(address, None);
                        if let Some(why) = dir.update_lease(address, None) {
                            end(&core2, &address, &why);
                        }
                    }
                    _ => {}
                },
            );
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = run => {
                    if let Err(e) = r {
                        debug!(error = %e, "pubsub stream ended; full reads continue");
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// Forms the cluster of every served lease that has none with a member yet, so that idle
/// workers of its provider join as soon as the lease is served, not at the user's first call.
fn form_clusters(dir: &ChainDirectory, core: &Core) {
    let formed: HashSet<Arc<str>> = core.cluster_leases().into_iter().collect();
    for lease in dir.served_leases() {
        let id: Arc<str> = lease.to_string().into();
        if !formed.contains(&id) {
            let _ = core.cluster(&id);
        }
    }
}

/// Gives each served lease's cluster the GPU count the chain says (a partial slash shrinks a
/// lease; the keeper that slashed has already taken the failed workers out).
fn sync_gpus(dir: &ChainDirectory, core: &Core) {
    for lease in dir.served_leases() {
        let id: Arc<str> = lease.to_string().into();
        let Some(info) = dir.lease(&id) else {
            continue;
        };
        if core
            .cluster(&id)
            .is_ok_and(|c| c.gpus_requested != info.gpus)
        {
            core.resize_lease(&id, &[], info.gpus, "its GPU count changed on chain");
        }
    }
}

fn end(core: &Core, lease: &Pubkey, why: &Ended) {
    core.metrics.leases_ended.inc();
    core.metrics
        .checkpoint_lag_seconds
        .remove(&crate::metrics::label("lease", lease.to_string()));
    let failed = core.end_lease(&lease.to_string(), &why.to_string());
    info!(lease = %lease, reason = %why, tasks_failed = failed, "lease no longer served");
}
