//! Placement groups (Ray's PACK, SPREAD, STRICT_PACK, STRICT_SPREAD; the spreading ones over
//! zones first): creating them,
//! placing their bundles on workers, and placing tasks inside a bundle.

use std::collections::{HashMap, HashSet};

use super::*;

impl Scheduler {
    pub(super) fn place_in_group(
        &mut self,
        pg: u64,
        bundle: Option<u32>,
        req: &Request,
    ) -> Option<Grant> {
        let g = self.groups.get_mut(&pg)?;
        let range: Vec<usize> = match bundle {
            Some(b) => vec![b as usize],
            None => (0..g.bundles.len()).collect(),
        };
        for b in range {
            let Some(bd) = g.bundles.get_mut(b) else {
                continue;
            };
            let Some(w) = bd.worker else { continue };
            if req.res.fits_in(&bd.free) {
                let gpus = take_gpus(bd.free_gpus, req.res.gpus);
                bd.free_gpus &= !gpus;
                bd.free.sub(&req.res);
                return Some(Grant {
                    worker: w,
                    res: req.res,
                    gpus,
                    bundle: Some((pg, b as u32)),
                    class: 0,
                });
            }
        }
        None
    }

    /// Create a placement group. Returns its id; it is placed at once if resources allow
    /// (all bundles atomically), otherwise it stays pending and is retried as resources free up.
    pub fn create_group(&mut self, bundles: Vec<Res>, strategy: PgStrategy) -> u64 {
        let id = self.next_pg.max(1);
        self.restore_group(id, bundles, strategy);
        id
    }

    /// Re-create a placement group with a known id (after a restart); later groups get
    /// higher ids.
    pub fn restore_group(&mut self, id: u64, bundles: Vec<Res>, strategy: PgStrategy) {
        self.next_pg = self.next_pg.max(id + 1);
        let g = Group {
            strategy,
            bundles: bundles
                .into_iter()
                .map(|r| Bundle {
                    res: r,
                    worker: None,
                    gpus: 0,
                    free: r,
                    free_gpus: 0,
                })
                .collect(),
        };
        self.groups.insert(id, g);
        self.place_pending_groups();
    }

    /// Remove a placement group (Ray's `remove_placement_group`): the unused part of each
    /// placed bundle goes back to its worker at once; what the group's running tasks hold goes
    /// back as they end ([`Scheduler::release`]). False when there is no such group.
    pub fn remove_group(&mut self, pg: u64) -> bool {
        let Some(g) = self.groups.remove(&pg) else {
            return false;
        };
        for bd in g.bundles {
            let Some(w) = bd.worker else { continue };
            let Some(wk) = self.worker_mut(w).filter(|wk| wk.alive) else {
                continue;
            };
            wk.free.add(&bd.free);
            wk.free_gpus |= bd.free_gpus;
            self.avail_insert(w);
        }
        true
    }

    /// Snapshot of a placement group.
    pub fn group_info(&self, pg: u64) -> Option<GroupInfo> {
        let g = self.groups.get(&pg)?;
        Some(GroupInfo {
            strategy: g.strategy,
            created: g.placed(),
            bundle_workers: g
                .bundles
                .iter()
                .map(|b| b.worker.and_then(|w| self.worker_key(w).cloned()))
                .collect(),
        })
    }

    /// Ids of all placement groups.
    pub fn group_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.groups.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub(super) fn place_pending_groups(&mut self) {
        let pending: Vec<u64> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.placed())
            .map(|(&id, _)| id)
            .collect();
        for id in pending {
            if let Some(plan) = self.plan_group(id) {
                for (b, w) in plan {
                    let res = self.groups[&id].bundles[b].res;
                    let grant = self.take_worker(w, &res);
                    if let Some(bd) = self.groups.get_mut(&id).and_then(|g| g.bundles.get_mut(b)) {
                        bd.worker = Some(w);
                        bd.gpus = grant.gpus;
                        bd.free = res;
                        bd.free_gpus = grant.gpus;
                    }
                }
            }
        }
    }

    /// A plan for the unplaced bundles of a group: `(bundle index, worker)`, all or nothing.
    fn plan_group(&self, id: u64) -> Option<Vec<(usize, WorkerIdx)>> {
        let g = self.groups.get(&id)?;
        let mut free: HashMap<WorkerIdx, Res> = HashMap::new();
        let candidates: Vec<WorkerIdx> = self
            .workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                w.as_ref()
                    .filter(|w| w.alive && !w.draining)
                    .map(|w| (i as WorkerIdx, w))
            })
            .map(|(i, w)| {
                free.insert(i, w.free);
                i
            })
            .collect();
        let placed: Vec<WorkerIdx> = g.bundles.iter().filter_map(|b| b.worker).collect();
        let missing: Vec<usize> = (0..g.bundles.len())
            .filter(|&b| g.bundles[b].worker.is_none())
            .collect();
        let mut plan = Vec::new();
        let mut used: HashSet<WorkerIdx> = placed.iter().copied().collect();
        match g.strategy {
            PgStrategy::StrictPack | PgStrategy::Pack => {
                // All missing bundles on one worker: the one already used, or any that fits the sum.
                let mut sum = Res::default();
                for &b in &missing {
                    sum.add(&g.bundles[b].res);
                }
                let target = match placed.first() {
                    Some(&w) => free.get(&w).filter(|f| sum.fits_in(f)).map(|_| w),
                    None => candidates
                        .iter()
                        .copied()
                        .find(|w| free.get(w).is_some_and(|f| sum.fits_in(f))),
                };
                if let Some(w) = target {
                    return Some(missing.iter().map(|&b| (b, w)).collect());
                }
                if g.strategy == PgStrategy::StrictPack {
                    return None;
                }
                // PACK fallback: fill workers one after another.
                let mut last: Option<WorkerIdx> = placed.first().copied();
                for &b in &missing {
                    let r = g.bundles[b].res;
                    let pick = last
                        .filter(|w| free.get(w).is_some_and(|f| r.fits_in(f)))
                        .or_else(|| {
                            candidates
                                .iter()
                                .copied()
                                .find(|w| free.get(w).is_some_and(|f| r.fits_in(f)))
                        })?;
                    if let Some(f) = free.get_mut(&pick) {
                        f.sub(&r);
                    }
                    last = Some(pick);
                    plan.push((b, pick));
                }
                Some(plan)
            }
            PgStrategy::StrictSpread | PgStrategy::Spread => {
                // Bundles per zone so far: a fresh worker is taken in the zone with the fewest
                // (so a group spreads over zones before it doubles up in one).
                let mut per_zone: HashMap<Option<&str>, usize> = HashMap::new();
                for &w in &placed {
                    *per_zone.entry(self.zone_of(w)).or_default() += 1;
                }
                for &b in &missing {
                    let r = g.bundles[b].res;
                    let fresh = candidates
                        .iter()
                        .copied()
                        .filter(|w| !used.contains(w) && free.get(w).is_some_and(|f| r.fits_in(f)))
                        .min_by_key(|w| per_zone.get(&self.zone_of(*w)).copied().unwrap_or(0));
                    let pick = match fresh {
                        Some(w) => w,
                        None if g.strategy == PgStrategy::Spread => candidates
                            .iter()
                            .copied()
                            .find(|w| free.get(w).is_some_and(|f| r.fits_in(f)))?,
                        None => return None,
                    };
                    if let Some(f) = free.get_mut(&pick) {
                        f.sub(&r);
                    }
                    used.insert(pick);
                    *per_zone.entry(self.zone_of(pick)).or_default() += 1;
                    plan.push((b, pick));
                }
                Some(plan)
            }
        }
    }
}
