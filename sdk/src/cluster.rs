//! Clusters the way io.net sells them: a spec (how many GPUs, which class, where, at what
//! price) matched against the providers on chain, opened as one lease per provider picked.
//!
//! - [`choose`]: which providers, and how many GPUs of each, from their accounts alone (a pure
//!   function: the CLI shows the plan before anything is signed).
//! - [`open`]: opens those leases, atomically when their `lease_open` instructions fit in one
//!   transaction, otherwise transaction by transaction with rollback (every lease already
//!   opened is closed again, refunded in full: it is still pending); then draws their
//!   committees.
//! - A cluster has no account of its own: its id is a number of the user's, and its leases are
//!   the user's leases whose nonce says so ([`lease_nonce`], [`cluster_of`]), so any client
//!   finds a user's clusters on chain ([`clusters`]).

use std::collections::BTreeMap;

use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

use crate::gpunet::instructions::LeaseOpenArgs;
use crate::{
    Config, GpuClass, GpunetClient, Lease, LeaseFilter, Provider, SdkError, ix, location, pda,
    token,
};

/// What the user asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterSpec {
    /// GPUs in all.
    pub gpus: u16,
    /// Only this class (any, if `None`).
    pub class: Option<GpuClass>,
    /// Only these regions, as registered (any, if empty).
    pub regions: Vec<String>,
    /// Only providers with at least this much memory per GPU.
    pub min_vram_gib: u16,
    /// The most paid per GPU-second (any price, if `None`).
    pub max_price: Option<u64>,
    /// Spread the GPUs as evenly as possible over at least two zones (region and zone), so
    /// that one zone going dark leaves the rest of the cluster running.
    pub spread_zones: bool,
}

/// One provider picked, with the GPUs leased from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    /// The provider account.
    pub provider: Pubkey,
    /// Its region and zone.
    pub region: String,
    /// Its zone.
    pub zone: String,
    /// GPUs leased from it.
    pub gpus: u16,
    /// Its price per GPU-second (what the lease takes).
    pub price: u64,
}

/// Why a spec cannot be met.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MatchError {
    /// The spec asks for nothing.
    #[error("a cluster needs at least one GPU")]
    NoGpus,
    /// Not enough GPUs match.
    #[error("only {found} GPUs match the spec ({providers} providers), {wanted} asked for")]
    NotEnough {
        /// GPUs asked for.
        wanted: u16,
        /// GPUs that match.
        found: u32,
        /// Providers that match.
        providers: usize,
    },
    /// Spreading over zones needs two.
    #[error("spreading over zones needs matching providers in at least two zones; found {0}")]
    OneZone(usize),
}

/// GPUs `p` can lease out now under `config`: free GPUs, as far as its free stake covers the
/// stake each locks (0 unless it is active and staked for its whole offer).
pub fn free_gpus(p: &Provider, config: &Config) -> u16 {
    let per_gpu = config.params.min_stake_per_gpu[p.gpu.class.index()];
    if !p.can_take_leases(config).unwrap_or(false) {
        return 0;
    }
    let by_count = p.gpu.count.saturating_sub(p.gpus_leased);
    let by_stake = p
        .free_stake()
        .unwrap_or(0)
        .checked_div(per_gpu)
        .unwrap_or(u64::MAX);
    by_count.min(u16::try_from(by_stake).unwrap_or(u16::MAX))
}

/// Chooses providers for `spec` among `providers`: the matching ones (class, regions, memory,
/// price, free GPUs), cheapest first (then the higher score, then more free GPUs, then the
/// address). Without spreading, the cheapest fill the cluster; spreading over zones, the GPUs
/// go one at a time to the zone with the fewest so far (its cheapest provider with room), so
/// zones differ by at most one GPU while they have room. One pick per provider.
pub fn choose(
    spec: &ClusterSpec,
    providers: &[(Pubkey, Provider)],
    config: &Config,
) -> Result<Vec<Pick>, MatchError> {
    if spec.gpus == 0 {
        return Err(MatchError::NoGpus);
    }
    let mut cands: Vec<(Pubkey, &Provider, u16)> = providers
        .iter()
        .filter(|(_, p)| spec.class.is_none_or(|c| p.gpu.class == c))
        .filter(|(_, p)| spec.regions.is_empty() || spec.regions.contains(&location(&p.region)))
        .filter(|(_, p)| p.gpu.vram_gib >= spec.min_vram_gib)
        .filter(|(_, p)| {
            spec.max_price
                .is_none_or(|m| p.gpu.price_per_gpu_second <= m)
        })
        .map(|(a, p)| (*a, p, free_gpus(p, config)))
        .filter(|(_, _, free)| *free > 0)
        .collect();
    cands.sort_by(|a, b| {
        (
            a.1.gpu.price_per_gpu_second,
            std::cmp::Reverse(a.1.score),
            std::cmp::Reverse(a.2),
            a.0,
        )
            .cmp(&(
                b.1.gpu.price_per_gpu_second,
                std::cmp::Reverse(b.1.score),
                std::cmp::Reverse(b.2),
                b.0,
            ))
    });
    let found: u32 = cands.iter().map(|c| u32::from(c.2)).sum();
    if found < u32::from(spec.gpus) {
        return Err(MatchError::NotEnough {
            wanted: spec.gpus,
            found,
            providers: cands.len(),
        });
    }
    let zone = |p: &Provider| (location(&p.region), location(&p.zone));
    let mut taken: Vec<u16> = vec![0; cands.len()];
    if spec.spread_zones {
        // Zones in the order of their cheapest provider.
        let mut zones: Vec<(String, String)> = Vec::new();
        for c in &cands {
            if !zones.contains(&zone(c.1)) {
                zones.push(zone(c.1));
            }
        }
        if zones.len() < 2 {
            return Err(MatchError::OneZone(zones.len()));
        }
        let mut per_zone: Vec<u32> = vec![0; zones.len()];
        for _ in 0..spec.gpus {
            // The zone with the fewest GPUs so far that still has room (ties: cheaper zone).
            let next = (0..zones.len())
                .filter(|&z| {
                    cands
                        .iter()
                        .zip(&taken)
                        .any(|(c, &t)| zone(c.1) == zones[z] && t < c.2)
                })
                .min_by_key(|&z| (per_zone[z], z))
                .expect("enough GPUs match");
            let i = (0..cands.len())
                .find(|&i| zone(cands[i].1) == zones[next] && taken[i] < cands[i].2)
                .expect("the zone has room");
            taken[i] += 1;
            per_zone[next] += 1;
        }
    } else {
        let mut left = spec.gpus;
        for (i, c) in cands.iter().enumerate() {
            let n = left.min(c.2);
            taken[i] = n;
            left -= n;
            if left == 0 {
                break;
            }
        }
    }
    Ok(cands
        .iter()
        .zip(taken)
        .filter(|(_, n)| *n > 0)
        .map(|((a, p, _), gpus)| Pick {
            provider: *a,
            region: location(&p.region),
            zone: location(&p.zone),
            gpus,
            price: p.gpu.price_per_gpu_second,
        })
        .collect())
}

/// Lease nonces of clusters have their top bit set; then the cluster id (32 bits) and the
/// lease's index in it (16 bits).
const CLUSTER_BIT: u64 = 1 << 63;

/// The nonce of lease `index` of cluster `id`.
pub fn lease_nonce(id: u32, index: u16) -> u64 {
    CLUSTER_BIT | (u64::from(id) << 16) | u64::from(index)
}

/// The cluster (id, index) a lease nonce belongs to, if any.
pub fn cluster_of(nonce: u64) -> Option<(u32, u16)> {
    (nonce & CLUSTER_BIT != 0).then_some(((nonce >> 16) as u32, nonce as u16))
}

/// `user`'s clusters on chain: id → its leases (address and account), by index.
pub async fn clusters(
    client: &GpunetClient,
    user: &Pubkey,
) -> Result<BTreeMap<u32, Vec<(Pubkey, Lease)>>, SdkError> {
    let mut out: BTreeMap<u32, Vec<(Pubkey, Lease)>> = BTreeMap::new();
    for (a, l) in client.leases(LeaseFilter::User(*user)).await? {
        if let Some((id, _)) = cluster_of(l.nonce) {
            out.entry(id).or_default().push((a, l));
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|(_, l)| l.nonce);
    }
    Ok(out)
}

/// The first cluster id of `user` with no lease on chain.
pub async fn unused_id(client: &GpunetClient, user: &Pubkey) -> Result<u32, SdkError> {
    let used = clusters(client, user).await?;
    Ok((0..=u32::MAX)
        .find(|i| !used.contains_key(i))
        .unwrap_or(u32::MAX))
}

/// The most bytes a transaction may have.
const PACKET: usize = 1232;

/// Groups `ixs` into as few transactions (paid by `payer`, in order) as the size limit allows.
fn batches(
    ixs: &[solana_sdk::instruction::Instruction],
    payer: &Pubkey,
) -> Vec<Vec<solana_sdk::instruction::Instruction>> {
    // A transaction: the signature count (one byte below 128), the signatures, the message.
    let fits = |ixs: &[solana_sdk::instruction::Instruction]| {
        let m = solana_sdk::message::Message::new(ixs, Some(payer));
        let signers = usize::from(m.header.num_required_signatures);
        1 + 64 * signers + m.serialize().len() <= PACKET
    };
    let mut out: Vec<Vec<solana_sdk::instruction::Instruction>> = Vec::new();
    for ix in ixs {
        match out.last_mut() {
            Some(b) if fits(&[b.as_slice(), std::slice::from_ref(ix)].concat()) => {
                b.push(ix.clone())
            }
            _ => out.push(vec![ix.clone()]),
        }
    }
    out
}

/// What [`open`] did.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The cluster id (of the user's).
    pub id: u32,
    /// Its leases, in pick order: address and provider account.
    pub leases: Vec<(Pubkey, Pick)>,
    /// Transactions the opens took (1: atomic).
    pub transactions: usize,
}

/// Why [`open`] failed; what it had opened is closed again.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A transaction failed; the leases opened before it were closed (refunded).
    #[error("{error} (opened {opened} of {wanted} leases; those were closed and refunded{})",
        if .rollback_failed.is_empty() { String::new() } else { format!(", except: {}", .rollback_failed.join("; ")) })]
    Failed {
        /// The failure.
        error: SdkError,
        /// Leases opened before it.
        opened: usize,
        /// Leases wanted.
        wanted: usize,
        /// Leases that could not be closed again (address: why).
        rollback_failed: Vec<String>,
    },
    /// The committees could not be drawn (the leases stay open and pending: `lease draw`).
    #[error("committee draw for lease {lease}: {error}")]
    Draw {
        /// The lease.
        lease: Pubkey,
        /// Why.
        error: SdkError,
    },
}

/// Opens the leases of `picks` as cluster `id` of `user`, at lease indices `first_index`
/// onwards (0 for a new cluster; past the last index to grow one), each paid for `duration`
/// seconds at most `max_price` per GPU-second (its pick's price if `None`), then draws their
/// committees. `progress` hears each step.
#[allow(clippy::too_many_arguments)]
pub async fn open(
    client: &GpunetClient,
    user: &Keypair,
    id: u32,
    first_index: u16,
    picks: &[Pick],
    duration: i64,
    max_price: Option<u64>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Opened, OpenError> {
    let failed = |error: SdkError, opened: usize, rollback_failed: Vec<String>| OpenError::Failed {
        error,
        opened,
        wanted: picks.len(),
        rollback_failed,
    };
    let config = client.config().await.map_err(|e| failed(e, 0, vec![]))?;
    let user_token = token::ata(&user.pubkey(), &config.mint);
    let mut leases = Vec::with_capacity(picks.len());
    let mut ixs = Vec::with_capacity(picks.len());
    for (i, p) in picks.iter().enumerate() {
        let index = u16::try_from(i)
            .ok()
            .and_then(|i| first_index.checked_add(i))
            .ok_or_else(|| {
                failed(
                    SdkError::Decode {
                        kind: "cluster",
                        address: user.pubkey(),
                        reason: format!("cluster {id} cannot hold more than 65,536 leases"),
                    },
                    0,
                    vec![],
                )
            })?;
        let nonce = lease_nonce(id, index);
        leases.push((pda::lease(&user.pubkey(), nonce), p.clone()));
        ixs.push(ix::lease_open(
            &user.pubkey(),
            &user.pubkey(),
            &user_token,
            &p.provider,
            &config.mint,
            LeaseOpenArgs {
                nonce,
                gpus: p.gpus,
                duration,
                max_price_per_gpu_second: max_price.unwrap_or(p.price),
            },
        ));
    }
    let batches = batches(&ixs, &user.pubkey());
    let mut opened = 0;
    for (n, b) in batches.iter().enumerate() {
        progress(&format!(
            "opening leases {}..{} of {} (transaction {} of {})",
            opened + 1,
            opened + b.len(),
            picks.len(),
            n + 1,
            batches.len()
        ));
        if let Err(e) = client.send(b, user, &[]).await {
            let mut rollback_failed = Vec::new();
            for (lease, p) in &leases[..opened] {
                progress(&format!("closing lease {lease} again"));
                let parties = ix::LeaseParties {
                    lease: *lease,
                    provider: p.provider,
                    keeper: Pubkey::default(),
                    mint: config.mint,
                    treasury: pda::treasury(),
                };
                let close = ix::lease_close(&user.pubkey(), &parties, &user_token, &user.pubkey());
                if let Err(e) = client.send(&[close], user, &[]).await {
                    rollback_failed.push(format!("{lease}: {e}"));
                }
            }
            return Err(failed(e, opened, rollback_failed));
        }
        opened += b.len();
    }
    for (lease, _) in &leases {
        progress(&format!("drawing the committee of lease {lease}"));
        client
            .draw_committee(user, lease)
            .await
            .map_err(|error| OpenError::Draw {
                lease: *lease,
                error,
            })?;
    }
    Ok(Opened {
        id,
        leases,
        transactions: batches.len(),
    })
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;

/// A lease of a cluster that [`connect`] left out, and why.
#[cfg(feature = "task")]
#[derive(Clone, Debug)]
pub struct LeftOut {
    /// Its index in the cluster.
    pub index: u16,
    /// Its address.
    pub lease: Pubkey,
    /// Why (not active, no keeper drawn, its keeper refused or is unreachable).
    pub why: String,
}

/// Sessions on every active lease of `user`'s cluster `id`, each with the keeper the chain
/// says serves it, joined as one cluster ([`crate::task::cluster::ClusterClient`]: tasks,
/// object refs and placement groups span the leases). Leases that cannot be reached are left
/// out and listed; with none left it fails.
#[cfg(feature = "task")]
pub async fn connect(
    client: &GpunetClient,
    user: &crate::task::SigningKey,
    id: u32,
) -> Result<(crate::task::cluster::ClusterClient, Vec<LeftOut>), ConnectError> {
    use crate::task::cluster::{ClusterClient, Member};
    let owner = Pubkey::new_from_array(user.verifying_key().to_bytes());
    let leases = clusters(client, &owner)
        .await?
        .remove(&id)
        .ok_or(ConnectError::NoCluster(id))?;
    let mut endpoints: BTreeMap<Pubkey, String> = BTreeMap::new();
    let mut channels: BTreeMap<String, crate::task::Channel> = BTreeMap::new();
    let (mut members, mut left) = (Vec::new(), Vec::new());
    for (address, l) in leases {
        let index = cluster_of(l.nonce).map(|(_, i)| i).unwrap_or_default();
        let mut skip = |why: String| {
            left.push(LeftOut {
                index,
                lease: address,
                why,
            })
        };
        if l.status != crate::LeaseStatus::Active {
            skip(format!("{:?}", l.status).to_lowercase());
            continue;
        }
        // Leases often share a keeper: its account is read once.
        let endpoint = match endpoints.get(&l.keeper) {
            Some(e) => e.clone(),
            None => match client.fetch::<crate::Keeper>("keeper", &l.keeper).await {
                Ok(k) => {
                    endpoints.insert(l.keeper, k.endpoint.clone());
                    k.endpoint
                }
                Err(e) => {
                    skip(format!("its keeper {}: {e}", l.keeper));
                    continue;
                }
            },
        };
        let ch = match channels.get(&endpoint) {
            Some(c) => c.clone(),
            None => match crate::task::channel(&endpoint).await {
                Ok(c) => {
                    channels.insert(endpoint.clone(), c.clone());
                    c
                }
                Err(e) => {
                    skip(format!("keeper {endpoint}: {e}"));
                    continue;
                }
            },
        };
        match crate::task::Client::on_channel(ch, &address.to_string(), user).await {
            Ok(c) => members.push(Member { index, client: c }),
            Err(e) => skip(format!("keeper {endpoint}: {e}")),
        }
    }
    if members.is_empty() {
        return Err(ConnectError::NoneReachable(left));
    }
    Ok((ClusterClient::new(members), left))
}

/// Why [`connect`] failed.
#[cfg(feature = "task")]
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Reading the chain failed.
    #[error(transparent)]
    Chain(#[from] SdkError),
    /// The user has no cluster of that id.
    #[error("no cluster {0} of this wallet on chain")]
    NoCluster(u32),
    /// No lease of it could be reached.
    #[error("no lease of the cluster can be reached: {}", .0.iter().map(|l| format!("{} ({}): {}", l.index, l.lease, l.why)).collect::<Vec<_>>().join("; "))]
    NoneReachable(Vec<LeftOut>),
}
