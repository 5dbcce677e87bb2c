//! Placement groups over the cluster's leases: made by splitting the bundles over the leases
//! ([`route::plan_group`]), read back from each part's keeper, and healed when a lease holding
//! a part goes dark.

use std::sync::Arc;

use super::{ClusterClient, ClusterError};
use crate::route::{self, LeaseIdx, Part};
use crate::{Status, pb};

/// A placement group over the cluster's leases.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its id in this client.
    pub id: u64,
    /// The strategy of the whole group (each part has it on its lease).
    pub strategy: pb::PlacementStrategy,
    /// Its bundles.
    pub bundles: Vec<pb::Resources>,
    /// Each lease's part, with the id of the part's group on that lease's keeper.
    pub parts: Vec<(Part, u64)>,
}

impl Group {
    /// The lease, its keeper's group id and the bundle index there of bundle `b`.
    pub(super) fn locate(&self, b: usize) -> Option<(LeaseIdx, u64, i32)> {
        self.parts.iter().find_map(|(p, pg)| {
            let i = p.bundles.iter().position(|x| *x == b)?;
            Some((p.lease, *pg, i as i32))
        })
    }
}

/// A placement group's state over its parts.
#[derive(Debug, Clone)]
pub struct GroupState {
    /// Every part's bundles are reserved.
    pub created: bool,
    /// The worker of each bundle of the whole group, once reserved.
    pub bundle_workers: Vec<Option<String>>,
}

impl ClusterClient {
    /// Creates a placement group over the cluster's leases ([`route::plan_group`]); tasks
    /// target it by this id and the whole group's bundle index.
    pub async fn create_placement_group(
        &self,
        bundles: Vec<pb::Resources>,
        strategy: pb::PlacementStrategy,
    ) -> Result<Arc<Group>, ClusterError> {
        let view = self.view().await;
        let plan = route::plan_group(&view.rooms(), &bundles, strategy)
            .map_err(ClusterError::Unschedulable)?;
        let parts = self.create_parts(plan, &bundles, strategy).await?;
        let mut g = self.lock();
        g.next_group += 1;
        let group = Arc::new(Group {
            id: g.next_group,
            strategy,
            bundles,
            parts,
        });
        g.groups.insert(group.id, group.clone());
        Ok(group)
    }

    /// Makes the part of group `pg` held by the dark lease `dark` again on the other live
    /// leases (for `STRICT_SPREAD`, away from the workers holding its other parts), points the
    /// group at it, and removes the old part from the dark lease's keeper where it answers.
    pub(super) async fn heal_group(&self, pg: u64, dark: LeaseIdx) -> Result<(), ClusterError> {
        let group = self
            .lock()
            .groups
            .get(&pg)
            .cloned()
            .ok_or_else(|| ClusterError::Invalid(format!("no placement group {pg}")))?;
        let Some(at) = group.parts.iter().position(|(p, _)| p.lease == dark) else {
            return Ok(()); // Healed already.
        };
        let view = self.view().await;
        let mut exclude = self.long_dark();
        exclude.push(dark);
        // Workers that hold the group's other parts.
        let mut taken: Vec<String> = Vec::new();
        for (p, local) in group.parts.iter().filter(|(p, _)| p.lease != dark) {
            let info = view
                .leases
                .iter()
                .find(|(l, _)| *l == p.lease)
                .and_then(|(_, v)| v.as_ref().ok());
            if let Some(i) = info
                .into_iter()
                .flat_map(|i| &i.placement_groups)
                .find(|g| g.placement_group_id == *local)
            {
                taken.extend(i.bundle_workers.iter().cloned());
            }
        }
        let strict = group.strategy == pb::PlacementStrategy::StrictSpread;
        let rooms: Vec<route::Room> = view
            .rooms()
            .into_iter()
            .filter(|r| !exclude.contains(&r.lease))
            .filter(|r| !strict || !taken.contains(&r.worker))
            .collect();
        let lost = &group.parts[at].0.bundles;
        let sub: Vec<pb::Resources> = lost.iter().map(|b| group.bundles[*b].clone()).collect();
        let plan: Vec<Part> = route::plan_group(&rooms, &sub, group.strategy)
            .map_err(|e| {
                ClusterError::Unschedulable(format!(
                    "placement group {pg}: its bundles on lease {dark} (no live worker) fit                      nowhere else: {e}"
                ))
            })?
            .into_iter()
            .map(|p| Part {
                lease: p.lease,
                bundles: p.bundles.iter().map(|i| lost[*i]).collect(),
            })
            .collect();
        let new_parts = self
            .create_parts(plan, &group.bundles, group.strategy)
            .await?;
        let cur = {
            let mut g = self.lock();
            let Some(cur) = g.groups.get(&pg).cloned() else {
                return Ok(());
            };
            let mut parts: Vec<(Part, u64)> = cur
                .parts
                .iter()
                .filter(|(p, _)| p.lease != dark)
                .cloned()
                .collect();
            parts.extend(new_parts);
            g.groups.insert(
                pg,
                Arc::new(Group {
                    parts,
                    ..(*cur).clone()
                }),
            );
            cur
        };
        // The old part, best effort: its keeper may answer though its workers are gone; if
        // not, it stays reserved there until that lease ends.
        let old: Vec<(Part, u64)> = cur
            .parts
            .iter()
            .filter(|(p, _)| p.lease == dark)
            .cloned()
            .collect();
        self.remove_parts(&old).await;
        Ok(())
    }

    /// Creates each planned part as a group on its lease's keeper; if one is refused, the
    /// parts already made are removed again (nothing stays reserved) and the refusal returned.
    async fn create_parts(
        &self,
        plan: Vec<Part>,
        bundles: &[pb::Resources],
        strategy: pb::PlacementStrategy,
    ) -> Result<Vec<(Part, u64)>, ClusterError> {
        let mut parts: Vec<(Part, u64)> = Vec::with_capacity(plan.len());
        for p in plan {
            let mine = p.bundles.iter().map(|b| bundles[*b].clone()).collect();
            let made = match self.member(p.lease) {
                Ok(m) => m
                    .create_placement_group(mine, strategy)
                    .await
                    .map_err(|status| ClusterError::Keeper {
                        lease: p.lease,
                        status,
                    }),
                Err(e) => Err(e),
            };
            match made {
                Ok(info) => parts.push((p, info.placement_group_id)),
                Err(e) => {
                    let left = self.remove_parts(&parts).await;
                    return Err(match (e, left.is_empty()) {
                        (e, true) => e,
                        (ClusterError::Keeper { lease, status }, false) => ClusterError::Keeper {
                            lease,
                            status: Status::new(
                                status.code(),
                                format!(
                                    "{} (the parts on leases {left:?} could not be removed: \
                                     they stay reserved until their leases end)",
                                    status.message()
                                ),
                            ),
                        },
                        (e, false) => e,
                    });
                }
            }
        }
        Ok(parts)
    }

    /// Removes parts from their keepers; the leases where that failed.
    async fn remove_parts(&self, parts: &[(Part, u64)]) -> Vec<LeaseIdx> {
        let mut failed = Vec::new();
        for (p, local) in parts {
            let ok = match self.member(p.lease) {
                Ok(m) => m.remove_placement_group(*local).await.is_ok(),
                Err(_) => false,
            };
            if !ok {
                failed.push(p.lease);
            }
        }
        failed
    }

    /// Removes a placement group from every lease holding a part of it (Ray's
    /// `remove_placement_group`): its unfinished tasks are cancelled, its reservations freed.
    /// Returns the tasks cancelled.
    pub async fn remove_placement_group(
        &self,
        id: u64,
    ) -> Result<Vec<super::TaskRef>, ClusterError> {
        let group = self
            .lock()
            .groups
            .remove(&id)
            .ok_or_else(|| ClusterError::Invalid(format!("no placement group {id}")))?;
        let mut cancelled = Vec::new();
        for (p, local) in &group.parts {
            let ids = self
                .member(p.lease)?
                .remove_placement_group(*local)
                .await
                .map_err(|status| ClusterError::Keeper {
                    lease: p.lease,
                    status,
                })?;
            cancelled.extend(ids.into_iter().map(|task| super::TaskRef {
                lease: p.lease,
                task,
            }));
        }
        Ok(cancelled)
    }

    /// A placement group's state, read from its parts' keepers.
    pub async fn group_state(&self, id: u64) -> Result<GroupState, ClusterError> {
        let group = self
            .lock()
            .groups
            .get(&id)
            .cloned()
            .ok_or_else(|| ClusterError::Invalid(format!("no placement group {id}")))?;
        let n = group.parts.iter().map(|(p, _)| p.bundles.len()).sum();
        let mut st = GroupState {
            created: true,
            bundle_workers: vec![None; n],
        };
        for (p, pg) in &group.parts {
            let c =
                self.member(p.lease)?
                    .cluster()
                    .await
                    .map_err(|status| ClusterError::Keeper {
                        lease: p.lease,
                        status,
                    })?;
            let info = c
                .placement_groups
                .iter()
                .find(|g| g.placement_group_id == *pg);
            let created = info.is_some_and(|i| i.state == pb::PlacementGroupState::Created as i32);
            st.created &= created;
            if let Some(i) = info.filter(|_| created) {
                for (k, b) in p.bundles.iter().enumerate() {
                    st.bundle_workers[*b] = i.bundle_workers.get(k).cloned();
                }
            }
        }
        Ok(st)
    }
}
