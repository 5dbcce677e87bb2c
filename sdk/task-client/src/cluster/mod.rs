//! One cluster over several leases ([`ClusterClient`]), the way Ray's driver sees one cluster
//! over many nodes.
//!
//! A cluster opened from a spec (`gpunet cluster open`) is one lease per provider, each served
//! by its own keeper (drawn per lease: no keeper sees another lease's workers). The client is
//! what joins them, as Ray's owner-based design has the driver own its tasks:
//!
//! - **Tasks** go to a lease whose live workers can run them ([`crate::route`]: resources, GPU
//!   model, label selectors, node affinity, `SPREAD` over zones first, otherwise each lease in
//!   proportion to its capacity), preferring the lease that already holds their arguments.
//! - **Object refs span leases**: a [`TaskRef`] names a lease and a task; an argument made in
//!   another lease travels through the client (fetched from its keeper, passed by value).
//! - **Placement groups span leases**: a group's bundles are split over the leases (zones first
//!   for `SPREAD`/`STRICT_SPREAD`), each part a group of the same strategy on its keeper; a task
//!   names the whole group's bundle index and goes to the part that holds it.
//! - **A dark lease loses no task**: the client keeps the spec of every task it submitted
//!   (lineage); when a lease has had no live worker for [`ClusterClient::failover_after`], or
//!   its keeper says the lease ended, the task is cancelled there and submitted again to
//!   another lease, its arguments re-made from their own tasks where they were lost with it.
//!   The [`TaskRef`] the user holds keeps working: it follows the task. A task bound to a
//!   placement group's bundle on the dark lease moves with its bundle: that part of the group
//!   is made again on the live leases first.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod groups;

pub use groups::{Group, GroupState};

use crate::route::{self, LeaseIdx, Load};
use crate::{Client, Code, Status, Streaming, pb};

/// Task ids a keeper hands out stay below this (they count from 1), so a [`TaskRef`] packs
/// into the 64-bit `ObjectRef.task_id` a [`pb::TaskArg`] carries.
const TASK_BITS: u32 = 48;

/// A task of the cluster: the lease (its index in the cluster) and the task's id on that
/// lease's keeper. Written `LEASE.TASK` (`2.17`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskRef {
    /// The lease's index in the cluster.
    pub lease: LeaseIdx,
    /// The task's id on the lease's keeper.
    pub task: u64,
}

impl TaskRef {
    /// An argument that is output `index` of this task (for specs given to
    /// [`ClusterClient::submit`]).
    pub fn arg(self, index: u32) -> pb::TaskArg {
        pb::TaskArg {
            kind: Some(pb::task_arg::Kind::Ref(self.object(index))),
        }
    }

    /// Output `index` of this task as an object ref in the cluster's numbering.
    pub fn object(self, index: u32) -> pb::ObjectRef {
        pb::ObjectRef {
            task_id: (u64::from(self.lease) << TASK_BITS) | self.task,
            index,
        }
    }

    fn unpack(packed: u64) -> TaskRef {
        TaskRef {
            lease: (packed >> TASK_BITS) as LeaseIdx,
            task: packed & ((1 << TASK_BITS) - 1),
        }
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.lease, self.task)
    }
}

impl FromStr for TaskRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a cluster task (LEASE.TASK, e.g. 2.17)");
        let (l, t) = s.split_once('.').ok_or_else(bad)?;
        Ok(TaskRef {
            lease: l.parse().map_err(|_| bad())?,
            task: t.parse().map_err(|_| bad())?,
        })
    }
}

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No lease of the cluster can run it (the reason says what is missing).
    #[error("unschedulable: {0}")]
    Unschedulable(String),
    /// A bad request (unknown lease, group or bundle).
    #[error("{0}")]
    Invalid(String),
    /// A lease's keeper refused or could not be reached.
    #[error("lease {lease}: {}: {}", .status.code(), .status.message())]
    Keeper {
        /// The lease's index.
        lease: LeaseIdx,
        /// What its keeper said.
        status: Status,
    },
}

/// One lease of the cluster and its session.
#[derive(Clone)]
pub struct Member {
    /// Its index in the cluster.
    pub index: LeaseIdx,
    /// A session on it with its keeper.
    pub client: Client,
}

/// The cluster as its keepers see it now: each lease's cluster, or why it could not be read.
#[derive(Debug, Clone)]
pub struct View {
    /// Per lease, in index order.
    pub leases: Vec<(LeaseIdx, Result<pb::ClusterInfo, Status>)>,
}

impl View {
    /// Live GPUs and live workers over every lease.
    pub fn totals(&self) -> (u32, usize) {
        self.leases
            .iter()
            .filter_map(|(_, v)| v.as_ref().ok())
            .fold((0, 0), |(g, w), v| {
                (
                    g + v.gpus_ready,
                    w + v.workers.iter().filter(|w| w.alive).count(),
                )
            })
    }

    fn rooms(&self) -> Vec<route::Room> {
        route::rooms(
            self.leases
                .iter()
                .filter_map(|(l, v)| Some((*l, v.as_ref().ok()?))),
        )
    }

    /// Leases with no live worker (or whose keeper did not answer).
    fn dark(&self) -> Vec<LeaseIdx> {
        self.leases
            .iter()
            .filter(|(_, v)| {
                v.as_ref()
                    .map(|v| !v.workers.iter().any(|w| w.alive && !w.draining))
                    .unwrap_or(true)
            })
            .map(|(l, _)| *l)
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    view: Option<(Instant, Arc<View>)>,
    load: Load,
    groups: HashMap<u64, Arc<Group>>,
    next_group: u64,
    /// The spec of every task this client submitted, as given (lineage for failover).
    owned: HashMap<TaskRef, pb::TaskSpec>,
    /// Where a task went when it was submitted again: original → now.
    moved: HashMap<TaskRef, TaskRef>,
    /// When each dark lease was first seen dark.
    dark_since: HashMap<LeaseIdx, Instant>,
}

/// Most task specs kept for failover; past it the oldest refs are served where they are.
const MAX_OWNED: usize = 100_000;

/// The leases of one cluster addressed as one cluster.
pub struct ClusterClient {
    members: Vec<Member>,
    inner: Mutex<Inner>,
    /// How long a lease may have no live worker before its unfinished tasks move.
    pub failover_after: Duration,
    /// How long a read of the leases' clusters is used for routing.
    pub view_ttl: Duration,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl ClusterClient {
    /// A cluster of these leases' sessions (the SDK's `gpunet_sdk::cluster::connect` opens
    /// them from the chain).
    pub fn new(mut members: Vec<Member>) -> Self {
        members.sort_by_key(|m| m.index);
        ClusterClient {
            members,
            inner: Mutex::new(Inner::default()),
            failover_after: Duration::from_secs(30),
            view_ttl: Duration::from_secs(1),
        }
    }

    /// The leases.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn member(&self, lease: LeaseIdx) -> Result<&Client, ClusterError> {
        self.members
            .iter()
            .find(|m| m.index == lease)
            .map(|m| &m.client)
            .ok_or_else(|| ClusterError::Invalid(format!("the cluster has no lease {lease}")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every lease's cluster, read now.
    pub async fn view(&self) -> View {
        let mut leases = Vec::with_capacity(self.members.len());
        for m in &self.members {
            leases.push((m.index, m.client.cluster().await));
        }
        let v = View { leases };
        let now = Instant::now();
        let dark = v.dark();
        let mut g = self.lock();
        g.dark_since.retain(|l, _| dark.contains(l));
        for l in dark {
            g.dark_since.entry(l).or_insert(now);
        }
        g.view = Some((now, Arc::new(v.clone())));
        v
    }

    async fn fresh_view(&self) -> Arc<View> {
        if let Some((at, v)) = &self.lock().view
            && at.elapsed() < self.view_ttl
        {
            return v.clone();
        }
        Arc::new(self.view().await)
    }

    /// Leases dark for at least `failover_after`.
    fn long_dark(&self) -> Vec<LeaseIdx> {
        let g = self.lock();
        g.dark_since
            .iter()
            .filter(|(_, t)| t.elapsed() >= self.failover_after)
            .map(|(l, _)| *l)
            .collect()
    }

    /// Where a task is now.
    pub fn locate(&self, r: TaskRef) -> TaskRef {
        let g = self.lock();
        let mut cur = r;
        while let Some(n) = g.moved.get(&cur) {
            cur = *n;
        }
        cur
    }

    /// Submits tasks in order; a `batch_ref` argument names an earlier task of the same call.
    /// Argument refs are [`TaskRef::arg`]s. Returns once every task is accepted by its lease's
    /// keeper (a task whose arguments live in another lease first waits for them).
    pub async fn submit(&self, specs: Vec<pb::TaskSpec>) -> Result<Vec<TaskRef>, ClusterError> {
        let mut out: Vec<TaskRef> = Vec::with_capacity(specs.len());
        for mut s in specs {
            for a in s.args.iter_mut() {
                if let Some(pb::task_arg::Kind::BatchRef(p)) = a.kind {
                    let r = out.get(p as usize).ok_or_else(|| {
                        ClusterError::Invalid(format!("batch_ref {p}: no earlier task there"))
                    })?;
                    *a = r.arg(0);
                }
            }
            out.push(self.place(s, Vec::new()).await?);
        }
        Ok(out)
    }

    /// Routes one task (not to `exclude`), resolves its arguments for the chosen lease and
    /// submits it; remembers its spec.
    fn place(
        &self,
        spec: pb::TaskSpec,
        exclude: Vec<LeaseIdx>,
    ) -> BoxFut<'_, Result<TaskRef, ClusterError>> {
        Box::pin(async move {
            let view = self.fresh_view().await;
            let mut exclude = exclude;
            exclude.extend(self.long_dark());
            let deps: Vec<TaskRef> = refs_of(&spec)
                .map(|o| self.locate(TaskRef::unpack(o.task_id)))
                .collect();
            let mut wire = spec.clone();
            let (lease, spread_zone) = match group_target(&spec) {
                Some((pg, bundle)) => {
                    let group = self.lock().groups.get(&pg).cloned().ok_or_else(|| {
                        ClusterError::Invalid(format!("no placement group {pg} in this cluster"))
                    })?;
                    let (lease, local, idx) = if bundle < 0 {
                        // Any bundle: the part on the (live) lease this client sent least.
                        let sent = self.lock().load.sent.clone();
                        group
                            .parts
                            .iter()
                            .filter(|(p, _)| !exclude.contains(&p.lease))
                            .min_by_key(|(p, _)| sent.get(&p.lease).copied().unwrap_or(0))
                            .map(|(p, pg)| (p.lease, *pg, -1))
                            .ok_or_else(|| {
                                ClusterError::Unschedulable(format!(
                                    "placement group {pg}: no part on a live lease"
                                ))
                            })?
                    } else {
                        group.locate(bundle as usize).ok_or_else(|| {
                            ClusterError::Invalid(format!(
                                "placement group {pg} has no bundle {bundle}"
                            ))
                        })?
                    };
                    wire.strategy = Some(crate::spec::strategy(
                        pb::scheduling_strategy::Kind::PlacementGroup(pb::PlacementGroupTarget {
                            placement_group_id: local,
                            bundle_index: idx,
                        }),
                    ));
                    (lease, None)
                }
                None => {
                    let mut prefer: Vec<(LeaseIdx, usize)> = Vec::new();
                    for d in &deps {
                        match prefer.iter_mut().find(|(l, _)| *l == d.lease) {
                            Some(e) => e.1 += 1,
                            None => prefer.push((d.lease, 1)),
                        }
                    }
                    prefer.sort_by_key(|(l, n)| (std::cmp::Reverse(*n), *l));
                    let prefer: Vec<LeaseIdx> = prefer.into_iter().map(|(l, _)| l).collect();
                    let load = self.lock().load.clone();
                    let c = route::choose_lease(&view.rooms(), &spec, &prefer, &exclude, &load)
                        .map_err(ClusterError::Unschedulable)?;
                    (c.lease, c.spread_zone)
                }
            };
            // Arguments: refs on the chosen lease stay refs; others travel by value.
            for a in wire.args.iter_mut() {
                if let Some(pb::task_arg::Kind::Ref(o)) = &a.kind {
                    *a = self.arg_for(lease, *o).await?;
                }
            }
            if let Some(pb::task_spec::Executor::Process(p)) = wire.executor.as_mut()
                && let Some(pb::task_arg::Kind::Ref(o)) =
                    p.stdin.as_ref().and_then(|a| a.kind.clone())
            {
                p.stdin = Some(self.arg_for(lease, o).await?);
            }
            let ids = self
                .member(lease)?
                .submit(vec![wire])
                .await
                .map_err(|status| ClusterError::Keeper { lease, status })?;
            let task = *ids.first().ok_or_else(|| ClusterError::Keeper {
                lease,
                status: Status::internal("the keeper accepted no task"),
            })?;
            if task >> TASK_BITS != 0 {
                return Err(ClusterError::Invalid(format!(
                    "lease {lease}'s keeper numbers tasks past 2^{TASK_BITS}"
                )));
            }
            let r = TaskRef { lease, task };
            let mut g = self.lock();
            g.load.record(lease, spread_zone.as_deref());
            if g.owned.len() < MAX_OWNED {
                g.owned.insert(r, spec);
            }
            Ok(r)
        })
    }

    /// An argument naming object `o` (cluster numbering) for a task on `lease`.
    async fn arg_for(
        &self,
        lease: LeaseIdx,
        o: pb::ObjectRef,
    ) -> Result<pb::TaskArg, ClusterError> {
        let at = self.locate(TaskRef::unpack(o.task_id));
        if at.lease == lease {
            return Ok(crate::spec::arg_ref(at.task, o.index));
        }
        let r = self
            .get(
                TaskRef::unpack(o.task_id),
                o.index,
                Duration::from_secs(24 * 3600),
            )
            .await?;
        let st = r.status.unwrap_or_default();
        if !r.ready || st.state != pb::TaskState::Finished as i32 {
            return Err(ClusterError::Invalid(format!(
                "argument {at} did not finish: {}",
                st.error
            )));
        }
        Ok(crate::spec::arg_value(r.data))
    }

    /// Waits up to `timeout` for output `index` of `r`, wherever the task is by then (a task
    /// of a dark or ended lease is submitted again elsewhere, see the module's doc).
    pub fn get(
        &self,
        r: TaskRef,
        index: u32,
        timeout: Duration,
    ) -> BoxFut<'_, Result<pb::GetResponse, ClusterError>> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            loop {
                let cur = self.locate(r);
                let left = deadline.saturating_duration_since(Instant::now());
                let step = left.min(self.failover_after.max(Duration::from_millis(200)) / 2);
                let res = self.member(cur.lease)?.get(cur.task, index, step).await;
                // Ready: finished with its output, or failed for good (the status says).
                if let Ok(g) = &res
                    && g.ready
                    && g.status
                        .as_ref()
                        .is_some_and(|s| s.state == pb::TaskState::Finished as i32)
                {
                    return res.map_err(|status| ClusterError::Keeper {
                        lease: cur.lease,
                        status,
                    });
                }
                let st = res.as_ref().ok().and_then(|g| g.status.clone());
                let kind = st.as_ref().map(|s| s.error_kind);
                let failed = st.as_ref().is_some_and(|s| {
                    s.state == pb::TaskState::Failed as i32
                        || s.state == pb::TaskState::Cancelled as i32
                });
                // The lease ended (or its worker died more often than the task may retry):
                // move at once. A dependency this client moved was cancelled where it was:
                // submit again with the dependency where it is now.
                let lost = kind == Some(pb::ErrorKind::LeaseEnded as i32)
                    || kind == Some(pb::ErrorKind::WorkerDied as i32)
                    || matches!(&res, Err(s) if s.code() == Code::FailedPrecondition);
                let dep_moved =
                    kind == Some(pb::ErrorKind::DependencyFailed as i32) && self.deps_moved(r);
                // Its group's bundle moved off this lease (the part there was removed, with
                // the tasks in it): follow the bundle.
                let bundle_moved = self.bundle_moved(r, cur.lease);
                // No live worker (or no keeper answering) for `failover_after`.
                self.fresh_view().await;
                let dark = self.long_dark().contains(&cur.lease);
                let owned = self.lock().owned.contains_key(&r);
                if owned && (lost || dep_moved || bundle_moved || (dark && !failed)) {
                    self.move_task(r, cur, lost || dark || bundle_moved).await?;
                    continue;
                }
                if failed || Instant::now() >= deadline {
                    return res.map_err(|status| ClusterError::Keeper {
                        lease: cur.lease,
                        status,
                    });
                }
                if let Err(status) = res {
                    if status.code() != Code::Unavailable || !owned {
                        return Err(ClusterError::Keeper {
                            lease: cur.lease,
                            status,
                        });
                    }
                    // Its keeper is unreachable: wait for it, or for the lease to count as dark.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        })
    }

    /// Whether `r` (a task this client submitted) names a bundle of a group whose part for it
    /// is no longer on `lease`.
    fn bundle_moved(&self, r: TaskRef, lease: LeaseIdx) -> bool {
        let g = self.lock();
        let Some((pg, bundle)) = g.owned.get(&r).and_then(group_target) else {
            return false;
        };
        let Some(group) = g.groups.get(&pg) else {
            return false;
        };
        if bundle >= 0 {
            group
                .locate(bundle as usize)
                .is_some_and(|(l, _, _)| l != lease)
        } else {
            !group.parts.iter().any(|(p, _)| p.lease == lease)
        }
    }

    /// Whether an argument of `r` (a task this client submitted) was moved since.
    fn deps_moved(&self, r: TaskRef) -> bool {
        let Some(spec) = self.lock().owned.get(&r).cloned() else {
            return false;
        };
        refs_of(&spec).any(|o| {
            let d = TaskRef::unpack(o.task_id);
            self.locate(d) != d
        })
    }

    /// Cancels `r` where it is (`cur`) and submits its spec again: elsewhere when `leave`.
    async fn move_task(&self, r: TaskRef, cur: TaskRef, leave: bool) -> Result<(), ClusterError> {
        let spec = self.lock().owned.get(&r).cloned().ok_or_else(|| {
            ClusterError::Invalid(format!("task {r} was not submitted by this client"))
        })?;
        if leave && let Some((pg, _)) = group_target(&spec) {
            // Its bundle moves first: the group's part on that lease is made again elsewhere.
            self.heal_group(pg, cur.lease).await?;
        }
        let _ = self.member(cur.lease)?.cancel(&[cur.task]).await;
        let mut exclude = self.long_dark();
        if leave {
            exclude.push(cur.lease);
        }
        let new = self.place(spec, exclude).await?;
        let mut g = self.lock();
        // The spec stays under the ref the user holds.
        g.owned.remove(&new);
        g.moved.insert(cur, new);
        Ok(())
    }

    /// Where each of `refs` is now, grouped by lease: (lease, [(position in refs, task id)]).
    fn by_lease(&self, refs: &[TaskRef]) -> Vec<(LeaseIdx, Vec<(usize, u64)>)> {
        let mut by: std::collections::BTreeMap<LeaseIdx, Vec<(usize, u64)>> = Default::default();
        for (i, r) in refs.iter().enumerate() {
            let cur = self.locate(*r);
            by.entry(cur.lease).or_default().push((i, cur.task));
        }
        by.into_iter().collect()
    }

    /// Statuses, each read where the task is now (one request per lease).
    pub async fn status(&self, refs: &[TaskRef]) -> Result<Vec<pb::TaskStatus>, ClusterError> {
        let mut out = vec![pb::TaskStatus::default(); refs.len()];
        for (lease, items) in self.by_lease(refs) {
            let ids: Vec<u64> = items.iter().map(|(_, t)| *t).collect();
            let got = self
                .member(lease)?
                .status(&ids)
                .await
                .map_err(|status| ClusterError::Keeper { lease, status })?;
            for ((i, _), st) in items.into_iter().zip(got) {
                out[i] = st;
            }
        }
        Ok(out)
    }

    /// Cancels tasks where they are (one request per lease); true for each that was cancelled.
    pub async fn cancel(&self, refs: &[TaskRef]) -> Result<Vec<bool>, ClusterError> {
        let mut out = vec![false; refs.len()];
        for (lease, items) in self.by_lease(refs) {
            let ids: Vec<u64> = items.iter().map(|(_, t)| *t).collect();
            let done = self
                .member(lease)?
                .cancel(&ids)
                .await
                .map_err(|status| ClusterError::Keeper { lease, status })?;
            for ((i, _), ok) in items.into_iter().zip(done) {
                out[i] = ok;
            }
        }
        Ok(out)
    }

    /// Every lease's tasks (up to `limit` each), in lease then id order.
    pub async fn list(
        &self,
        state: pb::TaskState,
        limit: u32,
    ) -> Result<Vec<(TaskRef, pb::TaskStatus)>, ClusterError> {
        let mut out = Vec::new();
        for m in &self.members {
            let l =
                m.client
                    .list(state, 0, limit)
                    .await
                    .map_err(|status| ClusterError::Keeper {
                        lease: m.index,
                        status,
                    })?;
            out.extend(l.into_iter().map(|s| {
                (
                    TaskRef {
                        lease: m.index,
                        task: s.task_id,
                    },
                    s,
                )
            }));
        }
        Ok(out)
    }

    /// A task's log (see [`Client::logs`]), where the task is now.
    pub async fn logs(
        &self,
        r: TaskRef,
        offset: u64,
        follow: bool,
    ) -> Result<Streaming<pb::LogChunk>, ClusterError> {
        let cur = self.locate(r);
        self.member(cur.lease)?
            .logs(cur.task, offset, follow)
            .await
            .map_err(|status| ClusterError::Keeper {
                lease: cur.lease,
                status,
            })
    }
}

/// A task's target group and bundle, if it names one.
fn group_target(spec: &pb::TaskSpec) -> Option<(u64, i32)> {
    match spec.strategy.as_ref()?.kind.as_ref()? {
        pb::scheduling_strategy::Kind::PlacementGroup(p) => {
            Some((p.placement_group_id, p.bundle_index))
        }
        _ => None,
    }
}

/// The object refs among a spec's arguments and stdin.
fn refs_of(spec: &pb::TaskSpec) -> impl Iterator<Item = &pb::ObjectRef> {
    let stdin = match &spec.executor {
        Some(pb::task_spec::Executor::Process(p)) => p.stdin.as_ref(),
        _ => None,
    };
    spec.args.iter().chain(stdin).filter_map(|a| match &a.kind {
        Some(pb::task_arg::Kind::Ref(o)) => Some(o),
        _ => None,
    })
}
