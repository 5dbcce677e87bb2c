//! A worker without `--keeper` serves every keeper that serves a lease of its provider.
//!
//! The chain says which leases of the provider are active and which keeper serves each; the
//! worker connects to each of those keepers (at the endpoint its account publishes) and offers
//! each only its share of the machine's GPUs, so that two keepers never put leases on the same
//! GPU. The shares come from [`plan`], which every worker of the provider computes alike from
//! the chain alone: the provider's GPUs split evenly over its listed worker keys (the chain
//! does not know each machine's count), the active leases, oldest first, laid over those GPUs
//! worker by worker. An older lease keeps its GPUs when a newer one opens; a lease that moves
//! to another keeper (reassignment) moves its GPUs with it; a keeper left with no lease of the
//! provider is drained and left. The plan is read again every two seconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use gpunet_sdk::{Lease, LeaseFilter, LeaseStatus, Provider};
use solana_sdk::pubkey::Pubkey;
use tokio_util::sync::CancellationToken;

use crate::{Global, chain};

/// Which of worker `me`'s GPUs (positions in its list, `my_gpus` of them) each keeper account
/// gets: `leases` (any, of the provider whose listed worker keys are `workers` and which offers
/// `provider_gpus`) that are active are laid, oldest first (by the slot of their open, then by
/// address), over the
/// provider's GPUs split evenly over its workers in listed order. A worker without GPUs serves
/// a lease whole: the keeper of the oldest active lease, with no positions. A worker the
/// provider does not list gets nothing.
pub fn plan(
    workers: &[Pubkey],
    provider_gpus: u16,
    leases: &[(Pubkey, Lease)],
    me: &Pubkey,
    my_gpus: u32,
) -> BTreeMap<Pubkey, Vec<u32>> {
    let mut out: BTreeMap<Pubkey, Vec<u32>> = BTreeMap::new();
    let Some(mine) = workers.iter().position(|w| w == me) else {
        return out;
    };
    let mut active: Vec<&(Pubkey, Lease)> = leases
        .iter()
        .filter(|(_, l)| l.status == LeaseStatus::Active && l.keeper != Pubkey::default())
        .collect();
    active.sort_by_key(|(a, l)| (l.opened_slot, *a));
    if my_gpus == 0 {
        if let Some((_, l)) = active.first() {
            out.insert(l.keeper, Vec::new());
        }
        return out;
    }
    let n = workers.len() as u32;
    let g = u32::from(provider_gpus);
    let share = |i: usize| g / n + u32::from((i as u32) < g % n);
    // Every GPU slot of the provider, worker by worker.
    let slots: Vec<(usize, u32)> = (0..workers.len())
        .flat_map(|w| (0..share(w)).map(move |p| (w, p)))
        .collect();
    let mut next = slots.iter();
    for (_, l) in active {
        for _ in 0..l.gpus {
            let Some(&(w, p)) = next.next() else {
                return out;
            };
            if w == mine && p < my_gpus {
                out.entry(l.keeper).or_default().push(p);
            }
        }
    }
    out
}

/// The plan for worker `me` now, by keeper endpoint.
async fn wanted(
    g: &Global,
    provider: &Pubkey,
    me: &Pubkey,
    my_gpus: u32,
) -> Result<BTreeMap<String, Vec<u32>>> {
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
    let mut out = BTreeMap::new();
    for (keeper, gpus) in plan(&p.workers, p.gpu.count, &leases, me, my_gpus) {
        let k = client
            .fetch::<gpunet_sdk::Keeper>("keeper", &keeper)
            .await
            .map_err(explain)?;
        out.insert(k.endpoint, gpus);
    }
    Ok(out)
}

/// A folder name for a keeper's endpoint (each connection keeps its own work directory).
fn folder(endpoint: &str) -> String {
    endpoint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Runs a worker of `provider` (configured by `config` for a keeper URL) with every keeper
/// serving an active lease of that provider, each offered its share of the GPUs ([`plan`]):
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
    let mut waiting_said = false;
    let result = loop {
        match wanted(g, provider, &me, my_gpus).await {
            Ok(want) => {
                let leaving: Vec<String> = running
                    .iter()
                    .filter(|(ep, (gpus, _))| want.get(*ep) != Some(gpus))
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
                for (ep, gpus) in want {
                    if running.contains_key(&ep) {
                        continue;
                    }
                    let mut c = config(&ep);
                    c.work_dir = c.work_dir.join(folder(&ep));
                    c.gpu_subset = (my_gpus > 0).then(|| gpus.clone());
                    let h = gpunet_worker::spawn_with(c, proof.clone());
                    eprintln!(
                        "worker {} of provider {provider}, keeper {ep}, GPUs {gpus:?}",
                        h.id()
                    );
                    running.insert(ep, (gpus, h));
                    waiting_said = false;
                }
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
    for (_, (_, h)) in running {
        h.cancel.cancel();
        let _ = h.join().await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpunet_sdk::gpunet::state::LeaseStatus;

    fn lease(keeper: Pubkey, gpus: u16, start: i64) -> Lease {
        Lease {
            user: Pubkey::new_unique(),
            provider: Pubkey::default(),
            keeper,
            rent_payer: Pubkey::default(),
            nonce: 0,
            status: LeaseStatus::Active,
            gpus,
            price_per_gpu_second: 1,
            stake_locked: 0,
            funded: 0,
            paid_provider: 0,
            paid_protocol: 0,
            paid_keeper: 0,
            refunded: 0,
            compensation: 0,
            start,
            paid_until: start,
            last_checkpoint_at: start,
            last_sequence: 0,
            last_digest: [0; 32],
            last_verdict: gpunet_sdk::Verdict::None,
            last_score: 0,
            bump: 0,
            vault_bump: 0,
            opened_slot: start as u64,
            terms: gpunet_sdk::gpunet::state::LeaseTerms::from_params(
                &gpunet_sdk::setup::default_params(6),
            ),
            committee: [Pubkey::default(); gpunet_sdk::gpunet::state::config::MAX_COMMITTEE],
            committee_len: 1,
            paused_mark: 0,
            judged_sequence: 0,
            rate_since: 0,
            spent_before_rate: 0,
            slashed_sequence: 0,
            reserved: [0; 40],
        }
    }

    #[test]
    fn leases_of_two_keepers_get_disjoint_gpus_oldest_first() {
        let (w1, w2) = (Pubkey::new_unique(), Pubkey::new_unique());
        let (a, b) = (Pubkey::new_unique(), Pubkey::new_unique());
        let workers = [w1, w2];
        // Keeper a's 1-GPU lease is older than keeper b's 2-GPU lease.
        let leases = vec![
            (Pubkey::new_unique(), lease(b, 2, 20)),
            (Pubkey::new_unique(), lease(a, 1, 10)),
        ];
        let p1 = plan(&workers, 4, &leases, &w1, 2);
        let p2 = plan(&workers, 4, &leases, &w2, 2);
        assert_eq!(p1, BTreeMap::from([(a, vec![0]), (b, vec![1])]));
        assert_eq!(p2, BTreeMap::from([(b, vec![0])]));
        // A newer lease does not move the older ones.
        let mut more = leases.clone();
        more.push((Pubkey::new_unique(), lease(a, 1, 30)));
        assert_eq!(plan(&workers, 4, &more, &w1, 2), p1);
        assert_eq!(
            plan(&workers, 4, &more, &w2, 2),
            BTreeMap::from([(b, vec![0]), (a, vec![1])])
        );
    }

    #[test]
    fn ended_pending_and_unlisted_get_nothing_and_gpuless_workers_serve_whole() {
        let w = Pubkey::new_unique();
        let k = Pubkey::new_unique();
        let mut ended = lease(k, 1, 1);
        ended.status = LeaseStatus::Ended;
        let pending = lease(Pubkey::default(), 1, 2);
        let leases = vec![
            (Pubkey::new_unique(), ended),
            (Pubkey::new_unique(), pending),
        ];
        assert!(plan(&[w], 2, &leases, &w, 2).is_empty());
        let live = vec![(Pubkey::new_unique(), lease(k, 2, 3))];
        assert!(plan(&[w], 2, &live, &Pubkey::new_unique(), 2).is_empty());
        assert_eq!(plan(&[w], 2, &live, &w, 0), BTreeMap::from([(k, vec![])]));
        // A machine with fewer GPUs than its share offers only those it has.
        assert_eq!(plan(&[w], 2, &live, &w, 1), BTreeMap::from([(k, vec![0])]));
    }
}

#[cfg(test)]
#[path = "worker_follow_tests.rs"]
mod chain_tests;
