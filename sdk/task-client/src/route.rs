//! Where a task or a placement group goes in a cluster of several leases ([`crate::cluster`]):
//! pure functions over the leases' cluster views, so every choice is testable without a keeper.
//!
//! Each lease's keeper schedules within its lease (Ray's per-node scheduling, done by the
//! keeper); these functions pick the lease, the way Ray's cluster scheduler picks a node: by
//! the live workers that can hold the request (resources, GPU model, label selector), their
//! zones, where the task's arguments already are, and how much this client sent each lease.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gpunet_proto::labels::{self, Selector};
use gpunet_proto::v1 as pb;

/// A lease's position in its cluster (the index its nonce carries).
pub type LeaseIdx = u16;

/// A live worker of one lease, as the client plans with it: the lease's share of the worker.
#[derive(Clone, Debug)]
pub struct Room {
    /// The lease it serves.
    pub lease: LeaseIdx,
    /// Its id (base58 key).
    pub worker: String,
    /// Its zone ("" when it names none).
    pub zone: String,
    /// Its labels with `zone`, as a selector sees them.
    pub labels: Arc<BTreeMap<String, String>>,
    /// What the lease's share of it holds.
    pub gpus: u32,
    /// The model of its GPUs ("" without GPUs).
    pub gpu_model: String,
    /// CPU (thousandths) and memory of the share.
    pub milli_cpus: u32,
    /// Bytes.
    pub memory: u64,
}

/// The live, non-draining workers of every lease whose view came back.
pub fn rooms<'a>(views: impl IntoIterator<Item = (LeaseIdx, &'a pb::ClusterInfo)>) -> Vec<Room> {
    let mut out = Vec::new();
    for (lease, v) in views {
        for w in v.workers.iter().filter(|w| w.alive && !w.draining) {
            out.push(Room {
                lease,
                worker: w.worker_id.clone(),
                zone: w.zone.clone(),
                labels: labels::of_worker(&w.zone, &w.labels),
                gpus: w.gpus.len() as u32,
                gpu_model: w.gpus.first().map(|g| g.model.clone()).unwrap_or_default(),
                milli_cpus: w.milli_cpus,
                memory: w.memory_bytes,
            });
        }
    }
    out
}

/// A task's request as the keeper reads it: unset = one CPU.
pub fn request(spec: &pb::TaskSpec) -> pb::Resources {
    spec.resources.clone().unwrap_or(pb::Resources {
        milli_cpus: 1000,
        ..Default::default()
    })
}

/// Whether `r` fits in `room` (a worker's whole share: what the keeper could ever give it).
pub fn fits(room: &Room, r: &pb::Resources) -> bool {
    r.gpus <= room.gpus
        && r.milli_cpus <= room.milli_cpus
        && r.memory_bytes <= room.memory
        && (r.gpu_model.is_empty() || room.gpu_model.contains(&r.gpu_model))
}

/// What this client has sent each lease and each zone, for balancing.
#[derive(Default, Debug, Clone)]
pub struct Load {
    /// Tasks sent to each lease.
    pub sent: HashMap<LeaseIdx, u64>,
    /// `SPREAD` tasks sent to each zone.
    pub spread: HashMap<String, u64>,
}

impl Load {
    /// Count a task sent to `lease` (and, for a `SPREAD` one, to `zone`).
    pub fn record(&mut self, lease: LeaseIdx, spread_zone: Option<&str>) {
        *self.sent.entry(lease).or_default() += 1;
        if let Some(z) = spread_zone {
            *self.spread.entry(z.to_string()).or_default() += 1;
        }
    }
}

/// The lease chosen for a task, and the zone it was spread to (a `SPREAD` task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The lease.
    pub lease: LeaseIdx,
    /// For a `SPREAD` task: the zone it counts against.
    pub spread_zone: Option<String>,
}

/// Picks the lease for `spec` (a task with no placement group; those go where their group
/// is). `prefer`: leases holding the task's arguments, most first (taken when they can run it:
/// the arguments then need not travel). `exclude`: leases not to use (dark ones).
pub fn choose_lease(
    rooms: &[Room],
    spec: &pb::TaskSpec,
    prefer: &[LeaseIdx],
    exclude: &[LeaseIdx],
    load: &Load,
) -> Result<Chosen, String> {
    use pb::scheduling_strategy::Kind;
    let req = request(spec);
    let selector = Selector::parse(&spec.label_selector)?;
    let kind = spec.strategy.as_ref().and_then(|s| s.kind.as_ref());
    let usable = |r: &&Room| !exclude.contains(&r.lease);
    if let Some(Kind::NodeAffinity(a)) = kind {
        if let Some(r) = rooms
            .iter()
            .filter(usable)
            .find(|r| r.worker == a.worker_id)
        {
            return Ok(Chosen {
                lease: r.lease,
                spread_zone: None,
            });
        }
        if !a.soft {
            return Err(format!(
                "node affinity: worker {} is not a live worker of the cluster's leases",
                a.worker_id
            ));
        }
    }
    let fit: Vec<&Room> = rooms
        .iter()
        .filter(usable)
        .filter(|r| fits(r, &req))
        .filter(|r| selector.as_ref().is_none_or(|s| s.matches(&r.labels)))
        .collect();
    if fit.is_empty() {
        return Err(format!(
            "no live worker of the cluster's leases{} fits the task ({} GPUs{}, {} milli-CPUs, \
             {} bytes of memory{})",
            if exclude.is_empty() {
                String::new()
            } else {
                format!(" (leases {exclude:?} left out: no live worker)")
            },
            req.gpus,
            if req.gpu_model.is_empty() {
                String::new()
            } else {
                format!(" of model {:?}", req.gpu_model)
            },
            req.milli_cpus,
            req.memory_bytes,
            if spec.label_selector.is_empty() {
                String::new()
            } else {
                format!(", labels {:?}", spec.label_selector)
            }
        ));
    }
    if let Some(l) = prefer.iter().find(|l| fit.iter().any(|r| r.lease == **l)) {
        return Ok(Chosen {
            lease: *l,
            spread_zone: None,
        });
    }
    let sent = |l: LeaseIdx| load.sent.get(&l).copied().unwrap_or(0);
    if let Some(Kind::Spread(_)) = kind {
        // Zones first: the zone with the fewest SPREAD tasks so far, then its least-sent lease.
        let zone = fit
            .iter()
            .map(|r| r.zone.as_str())
            .min_by_key(|z| (load.spread.get(*z).copied().unwrap_or(0), *z))
            .unwrap_or_default()
            .to_string();
        let lease = fit
            .iter()
            .filter(|r| r.zone == zone)
            .map(|r| r.lease)
            .min_by_key(|l| (sent(*l), *l))
            .unwrap_or(fit[0].lease);
        return Ok(Chosen {
            lease,
            spread_zone: Some(zone),
        });
    }
    // Default: each lease in proportion to what it can hold of this kind of task (its GPUs
    // for a GPU task, its CPUs otherwise): the least (sent + 1) / capacity.
    let mut cap: BTreeMap<LeaseIdx, u64> = BTreeMap::new();
    for r in &fit {
        let c = if req.gpus > 0 {
            u64::from(r.gpus)
        } else {
            u64::from(r.milli_cpus / 1000).max(1)
        };
        *cap.entry(r.lease).or_default() += c;
    }
    let lease = cap
        .iter()
        .min_by(|(la, ca), (lb, cb)| {
            let (a, b) = (
                u128::from(sent(**la) + 1) * u128::from(**cb),
                u128::from(sent(**lb) + 1) * u128::from(**ca),
            );
            a.cmp(&b).then(la.cmp(lb))
        })
        .map(|(l, _)| *l)
        .unwrap_or(fit[0].lease);
    Ok(Chosen {
        lease,
        spread_zone: None,
    })
}

/// One lease's part of a placement group spanning leases: the positions of the bundles it
/// holds, in order (they are its own group's bundles 0, 1, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The lease.
    pub lease: LeaseIdx,
    /// Positions in the whole group's bundle list.
    pub bundles: Vec<usize>,
}

/// Splits a placement group's bundles over the cluster's leases (Ray's strategies, with
/// leases and zones where Ray has nodes):
///
/// - `STRICT_PACK`: every bundle on one worker: one lease whose single worker holds them all.
/// - `PACK`: one lease if one can hold them all (the one with the most GPUs, then CPUs),
///   otherwise as few as first fit gives.
/// - `SPREAD` / `STRICT_SPREAD`: one bundle at a time to the zone with the fewest bundles so
///   far, to its emptiest worker; `STRICT_SPREAD` never puts two bundles on one worker (a
///   worker serving two leases of the cluster counts once).
///
/// Each part becomes a group of the same strategy on its lease's keeper, which places it
/// within the lease. The plan reserves nothing: it reads the workers' whole shares, as the
/// keeper's own check of whether a group can ever be placed does.
pub fn plan_group(
    rooms: &[Room],
    bundles: &[pb::Resources],
    strategy: pb::PlacementStrategy,
) -> Result<Vec<Part>, String> {
    use pb::PlacementStrategy as S;
    if bundles.is_empty() {
        return Err("a placement group needs at least one bundle".into());
    }
    let parts = |assign: &[LeaseIdx]| {
        let mut by: BTreeMap<LeaseIdx, Vec<usize>> = BTreeMap::new();
        for (i, l) in assign.iter().enumerate() {
            by.entry(*l).or_default().push(i);
        }
        by.into_iter()
            .map(|(lease, bundles)| Part { lease, bundles })
            .collect::<Vec<_>>()
    };
    let sum = bundles.iter().fold(pb::Resources::default(), |mut a, b| {
        a.milli_cpus = a.milli_cpus.saturating_add(b.milli_cpus);
        a.gpus = a.gpus.saturating_add(b.gpus);
        a.memory_bytes = a.memory_bytes.saturating_add(b.memory_bytes);
        if a.gpu_model.is_empty() {
            a.gpu_model = b.gpu_model.clone();
        }
        a
    });
    match strategy {
        S::StrictPack => {
            let r = rooms
                .iter()
                .filter(|r| fits(r, &sum) && bundles.iter().all(|b| fits(r, b)))
                .max_by_key(|r| (r.gpus, r.milli_cpus, std::cmp::Reverse(r.lease)))
                .ok_or("STRICT_PACK: no single worker of the cluster holds every bundle")?;
            Ok(vec![Part {
                lease: r.lease,
                bundles: (0..bundles.len()).collect(),
            }])
        }
        S::Pack => {
            let mut leases: Vec<LeaseIdx> = rooms.iter().map(|r| r.lease).collect();
            leases.sort_unstable();
            leases.dedup();
            let total = |l: LeaseIdx| {
                rooms
                    .iter()
                    .filter(|r| r.lease == l)
                    .fold((0u64, 0u64), |a, r| {
                        (a.0 + u64::from(r.gpus), a.1 + u64::from(r.milli_cpus))
                    })
            };
            leases.sort_by_key(|l| (std::cmp::Reverse(total(*l)), *l));
            for l in &leases {
                let mine: Vec<Room> = rooms.iter().filter(|r| r.lease == *l).cloned().collect();
                if let Some(a) = first_fit(&mine, bundles) {
                    return Ok(parts(&a));
                }
            }
            let a = first_fit(rooms, bundles)
                .ok_or("PACK: the cluster's live workers cannot hold these bundles")?;
            Ok(parts(&a))
        }
        S::Spread | S::StrictSpread => {
            let strict = strategy == S::StrictSpread;
            let mut left: Vec<Room> = rooms.to_vec();
            let mut used: HashMap<String, u32> = HashMap::new();
            let mut per_zone: HashMap<String, u32> = HashMap::new();
            let mut assign = Vec::with_capacity(bundles.len());
            for (i, b) in bundles.iter().enumerate() {
                let pick = left
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| fits(r, b))
                    .filter(|(_, r)| !strict || !used.contains_key(&r.worker))
                    .min_by_key(|(_, r)| {
                        (
                            per_zone.get(&r.zone).copied().unwrap_or(0),
                            used.get(&r.worker).copied().unwrap_or(0),
                            r.zone.clone(),
                            r.lease,
                        )
                    })
                    .map(|(k, _)| k)
                    .ok_or_else(|| {
                        format!(
                            "{}: no {}worker of the cluster holds bundle {i}",
                            if strict { "STRICT_SPREAD" } else { "SPREAD" },
                            if strict { "other " } else { "" }
                        )
                    })?;
                let r = &mut left[pick];
                take(r, b);
                *used.entry(r.worker.clone()).or_default() += 1;
                *per_zone.entry(r.zone.clone()).or_default() += 1;
                assign.push(r.lease);
            }
            Ok(parts(&assign))
        }
    }
}

/// First fit of every bundle into `rooms` (each taking what it holds); the lease of each.
fn first_fit(rooms: &[Room], bundles: &[pb::Resources]) -> Option<Vec<LeaseIdx>> {
    let mut left = rooms.to_vec();
    bundles
        .iter()
        .map(|b| {
            let r = left.iter_mut().find(|r| fits(r, b))?;
            take(r, b);
            Some(r.lease)
        })
        .collect()
}

fn take(r: &mut Room, b: &pb::Resources) {
    r.gpus -= b.gpus;
    r.milli_cpus -= b.milli_cpus;
    r.memory -= b.memory_bytes;
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
