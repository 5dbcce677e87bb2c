//! A worker without `--keeper` serves every keeper that serves a lease of its provider.
//!
//! The chain says which leases of the provider are active and which keeper serves each; the
//! worker connects to each of those keepers (at the endpoint its account publishes) and offers
//! each only its share of the machine's GPUs, so that two keepers never put leases on the same
//! GPU. The shares come from [`gpunet_sdk::plan`], which every worker of the provider (and
//! every keeper) computes alike from the chain alone: the provider's GPUs split evenly over its
//! listed worker keys (the chain does not know each machine's count), the active leases, oldest
//! first, laid over those GPUs worker by worker. An older lease keeps its GPUs when a newer one
//! opens; a lease that moves to another keeper (reassignment) moves its GPUs with it; a keeper
//! left with no lease of the provider is drained and left.
//!
//! To the other committee members of the leases it owes GPUs the worker keeps a standby
//! connection (no GPUs, no work): a member asked to co-sign a slash for the worker's silence
//! sees for itself that it is alive, and refuses. The plan is read again every two seconds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use gpunet_sdk::plan::{standby_keepers, worker_plan};
use gpunet_sdk::{LeaseFilter, Provider};
use solana_sdk::pubkey::Pubkey;
use tokio_util::sync::CancellationToken;

use crate::{Global, chain};

/// What worker `me` should be connected to now, by keeper endpoint.
#[derive(Debug, Default)]
struct Wanted {
    /// Each serving keeper with the GPUs (positions) it is offered.
    serving: BTreeMap<String, Vec<u32>>,
    /// Keepers that get a standby connection.
    standby: BTreeSet<String>,
}

/// The plan for worker `me` now, by keeper endpoint.
async fn wanted(g: &Global, provider: &Pubkey, me: &Pubkey, my_gpus: u32) -> Result<Wanted> {
    let client = g.client();
    let explain = |e| chain::explain(e, "worker run: reading its provider's leases");
    let p = client
        .fetch::<Provider>("provider", provider)
        .await
        .map_err(explain)?;
    let leases = client
        .leases(LeaseFilter::Provider(*provider))
        .await
        .map_err(explain)?;
    let mut out = Wanted::default();
    let mut endpoints: HashMap<Pubkey, Option<String>> = HashMap::new();
    for (keeper, gpus) in worker_plan(&p.workers, p.gpu.count, &leases, me, my_gpus) {
        if let Some(ep) = endpoint(&client, &mut endpoints, keeper)
            .await
            .map_err(explain)?
        {
            out.serving.insert(ep, gpus);
        }
    }
    for keeper in standby_keepers(&p.workers, p.gpu.count, &leases, me, my_gpus) {
        if let Some(ep) = endpoint(&client, &mut endpoints, keeper)
            .await
            .map_err(explain)?
            && !out.serving.contains_key(&ep)
        {
            out.standby.insert(ep);
        }
    }
    Ok(out)
}

/// The endpoint keeper account `keeper` publishes (`None`: the account is closed), read once
/// per plan.
async fn endpoint(
    client: &gpunet_sdk::GpunetClient,
    known: &mut HashMap<Pubkey, Option<String>>,
    keeper: Pubkey,
) -> Result<Option<String>, gpunet_sdk::SdkError> {
    if let Some(e) = known.get(&keeper) {
        return Ok(e.clone());
    }
    let e = match client.fetch::<gpunet_sdk::Keeper>("keeper", &keeper).await {
        Ok(k) => Some(k.endpoint),
        // A member that closed its account is no one to connect to.
        Err(gpunet_sdk::SdkError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    known.insert(keeper, e.clone());
    Ok(e)
}

/// A folder name for a keeper's endpoint (each connection keeps its own work directory).
fn folder(endpoint: &str) -> String {
    endpoint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Runs a worker of `provider` (configured by `config` for a keeper URL) with every keeper
/// serving an active lease of that provider, each offered its share of the GPUs ([`worker_plan`]),
/// and standing by for the other members of those leases' committees:
/// waiting while there is none, following leases as they open, end or move, until `stop`
/// (then each connection drains). A connection that ends by itself (refused, say) ends this
/// with its error.
pub async fn follow_leases(
    g: &Global,
    provider: &Pubkey,
    config: impl Fn(&str) -> gpunet_worker::WorkerConfig,
    proof: Arc<dyn gpunet_worker::ProofExecutor>,
    stop: CancellationToken,
) -> Result<()> {
    let probe = config("");
    let me = Pubkey::new_from_array(probe.key.verifying_key().to_bytes());
    let my_gpus = gpunet_worker::hw::hardware(probe.declared_gpus.as_ref())
        .gpus
        .len() as u32;
    let mut running: HashMap<String, (Vec<u32>, gpunet_worker::WorkerHandle)> = HashMap::new();
    let mut standing: HashMap<String, gpunet_worker::WorkerHandle> = HashMap::new();
    // Standby connections a keeper refused: not tried again while it stays in the plan.
    let mut refused: BTreeSet<String> = BTreeSet::new();
    let mut waiting_said = false;
    let result = loop {
        match wanted(g, provider, &me, my_gpus).await {
            Ok(want) => {
                let leaving: Vec<String> = running
                    .iter()
                    .filter(|(ep, (gpus, _))| want.serving.get(*ep) != Some(gpus))
                    .map(|(ep, _)| ep.clone())
                    .collect();
                // Those connections end (drained) before any new one starts, so that two
                // keepers never hold the same GPU of this machine, not even for a moment.
                let mut ending = Vec::new();
                for ep in leaving {
                    if let Some((_, h)) = running.remove(&ep) {
                        eprintln!("worker {me}: draining from keeper {ep} (its share changed)");
                        h.cancel.cancel();
                        ending.push(h.join());
                    }
                }
                // All were told to drain at once: they drain side by side.
                for h in ending {
                    if let Err(e) = h.await {
                        eprintln!("warning: worker {me}: a drained connection ended with {e}");
                    }
                }
                for (ep, gpus) in &want.serving {
                    if running.contains_key(ep) {
                        continue;
                    }
                    let mut c = config(ep);
                    c.work_dir = c.work_dir.join(folder(ep));
                    c.gpu_subset = (my_gpus > 0).then(|| gpus.clone());
                    let h = gpunet_worker::spawn_with(c, proof.clone());
                    eprintln!(
                        "worker {} of provider {provider}, keeper {ep}, GPUs {gpus:?}",
                        h.id()
                    );
                    running.insert(ep.clone(), (gpus.clone(), h));
                    waiting_said = false;
                }
                stand_by(&want.standby, &mut standing, &mut refused, &config, &proof);
                if running.is_empty() && !waiting_said {
                    eprintln!(
                        "waiting for an active lease on provider {provider} (its keeper is the one to join)"
                    );
                    waiting_said = true;
                }
            }
            Err(e) => eprintln!("warning: {e:#} (retrying)"),
        }
        if let Some(ep) = running
            .iter()
            .find(|(_, (_, h))| h.is_finished())
            .map(|(ep, _)| ep.clone())
            && let Some((_, h)) = running.remove(&ep)
        {
            break h.join().await.map_err(anyhow::Error::from);
        }
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };
    for h in standing
        .into_values()
        .chain(running.into_values().map(|(_, h)| h))
    {
        h.cancel.cancel();
        let _ = h.join().await;
    }
    result
}

/// Keeps a standby connection open to each keeper of `want` and to no other: a connection that
/// ended by itself (the keeper refused it) is reported once and not tried again while the
/// keeper stays wanted.
fn stand_by(
    want: &BTreeSet<String>,
    standing: &mut HashMap<String, gpunet_worker::WorkerHandle>,
    refused: &mut BTreeSet<String>,
    config: &impl Fn(&str) -> gpunet_worker::WorkerConfig,
    proof: &Arc<dyn gpunet_worker::ProofExecutor>,
) {
    refused.retain(|ep| want.contains(ep));
    standing.retain(|ep, h| {
        if !want.contains(ep) {
            h.cancel.cancel();
            return false;
        }
        if h.is_finished() {
            eprintln!("warning: keeper {ep} refused this worker's standby connection");
            refused.insert(ep.clone());
            return false;
        }
        true
    });
    for ep in want {
        if standing.contains_key(ep) || refused.contains(ep) {
            continue;
        }
        let mut c = config(ep);
        c.standby = true;
        let h = gpunet_worker::spawn_with(c, proof.clone());
        eprintln!("worker {}: standing by for keeper {ep}", h.id());
        standing.insert(ep.clone(), h);
    }
}

#[cfg(test)]
#[path = "worker_follow_tests.rs"]
mod chain_tests;
