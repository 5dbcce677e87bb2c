//! The cluster manager (Ray's cluster resource scheduler and its view of the nodes): which
//! workers are connected, which lease's cluster each belongs to, the scheduler of each cluster
//! (resources, placement groups: [`crate::sched`]), the resources each running task holds, the
//! pipelining lanes on workers, and object pulls in flight.
//!
//! It owns [`Clusters`] and nothing else: it never looks at a task's spec beyond the request
//! the coordinator hands it, and never decides a task's fate. Every method is synchronous and
//! never awaits; messages to workers go to their unbounded stream senders.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gpunet_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::directory::LeaseInfo;
use crate::error::KeeperError;
use crate::sched::{
    Decision, Grant, GroupInfo, PgStrategy, Request, Res, Scheduler, Strategy, WorkerIdx,
    WorkerSpec,
};
use crate::store::ClusterRecord;

mod lanes;

pub(crate) use lanes::{Lane, LaneStep, Pipe};

/// A lease's cluster: its workers and their scheduler.
pub(crate) struct Cluster {
    pub info: LeaseInfo,
    pub sched: Scheduler,
    pub members: Vec<Arc<str>>,
    was_ready: bool,
    /// Open lanes by id (`Clusters::next_lane`).
    pub lanes: HashMap<u64, Lane>,
    /// Per scheduling class: recent run time and lanes that may take more tasks.
    pub pipes: HashMap<u32, Pipe>,
    /// Workers taken out of this lease for good (their GPUs were slashed out of it).
    expelled: HashSet<Arc<str>>,
}

/// A worker's share given to one lease's cluster: the lease gets exactly its GPU count, so
/// one machine with 8 GPUs serves a 2-GPU and a 4-GPU lease side by side, each task pinned
/// (`CUDA_VISIBLE_DEVICES`) to its own lease's GPUs.
pub(crate) struct Slice {
    pub lease: Arc<str>,
    /// The worker's index in the lease's scheduler.
    pub idx: WorkerIdx,
    /// Positions in the worker's registered `gpus` pinned to the lease.
    pub gpus: Vec<u32>,
    /// The whole machine: a lease that names no GPU count (offline directories), or a worker
    /// without GPUs. No other lease shares it.
    pub whole: bool,
    /// CPU and memory that go with the GPUs (the worker's, in proportion to its GPUs).
    pub milli_cpus: u32,
    pub memory: u64,
}

/// A connected worker.
pub(crate) struct WorkerConn {
    pub conn_id: u64,
    pub provider: String,
    /// The leases it serves now, each with its share.
    pub slices: Vec<Slice>,
    pub tx: mpsc::UnboundedSender<pb::KeeperMessage>,
    pub last_seen: Instant,
    pub reg: pb::Register,
    /// Tasks assigned to it: running, or waiting in a lane behind a running one.
    pub running: HashSet<u64>,
    pub session: [u8; 16],
    pub draining: bool,
}

impl WorkerConn {
    /// Its share of `lease`, if it serves it.
    pub fn slice(&self, lease: &str) -> Option<&Slice> {
        self.slices.iter().find(|s| &*s.lease == lease)
    }

    /// Positions of its GPUs no lease holds.
    fn free_gpus(&self) -> Vec<u32> {
        (0..self.reg.gpus.len() as u32)
            .filter(|g| !self.slices.iter().any(|s| s.gpus.contains(g)))
            .collect()
    }

    /// Whether another lease could take a share of it.
    pub fn has_room(&self) -> bool {
        !self.draining
            && !self.slices.iter().any(|s| s.whole)
            && (self.slices.is_empty() || !self.free_gpus().is_empty())
    }
}

/// What a running task holds on its worker.
pub(crate) struct Hold {
    /// The lease it runs for, and the worker it runs on.
    pub lease: Arc<str>,
    pub worker: Arc<str>,
    /// Its resources (None while it waits in a lane behind the holder of the grant).
    pub grant: Option<Grant>,
    /// Lane it runs in or waits in (0: none).
    pub lane: u64,
}

/// Every cluster, connected worker and held resource.
pub(crate) struct Clusters {
    pub clusters: HashMap<Arc<str>, Cluster>,
    pub workers: HashMap<Arc<str>, WorkerConn>,
    /// Task → what it holds (present while it runs or waits in a lane).
    pub holds: HashMap<u64, Hold>,
    /// Leases that ended while this keeper served them, and why (their clients are told).
    pub ended: HashMap<Arc<str>, String>,
    pulls: HashMap<u64, (Arc<str>, oneshot::Sender<Option<Bytes>>)>,
    next_pull: u64,
    next_conn: u64,
    next_lane: u64,
}

impl Default for Clusters {
    fn default() -> Self {
        Clusters {
            clusters: HashMap::new(),
            workers: HashMap::new(),
            holds: HashMap::new(),
            ended: HashMap::new(),
            pulls: HashMap::new(),
            next_pull: 1,
            next_conn: 1,
            next_lane: 0,
        }
    }
}

pub(crate) fn pg_strategy(s: pb::PlacementStrategy) -> PgStrategy {
    match s {
        pb::PlacementStrategy::Pack => PgStrategy::Pack,
        pb::PlacementStrategy::Spread => PgStrategy::Spread,
        pb::PlacementStrategy::StrictPack => PgStrategy::StrictPack,
        pb::PlacementStrategy::StrictSpread => PgStrategy::StrictSpread,
    }
}

pub(crate) fn res_of(b: &pb::Resources) -> Res {
    Res {
        milli_cpus: b.milli_cpus,
        gpus: b.gpus,
        memory: b.memory_bytes,
    }
}

fn pg_info(id: u64, i: &GroupInfo) -> pb::PlacementGroupInfo {
    pb::PlacementGroupInfo {
        placement_group_id: id,
        strategy: match i.strategy {
            PgStrategy::Pack => pb::PlacementStrategy::Pack,
            PgStrategy::Spread => pb::PlacementStrategy::Spread,
            PgStrategy::StrictPack => pb::PlacementStrategy::StrictPack,
            PgStrategy::StrictSpread => pb::PlacementStrategy::StrictSpread,
        } as i32,
        state: if i.created {
            pb::PlacementGroupState::Created
        } else {
            pb::PlacementGroupState::Pending
        } as i32,
        bundle_workers: i
            .bundle_workers
            .iter()
            .map(|w| w.as_deref().unwrap_or("").to_string())
            .collect(),
    }
}

impl Cluster {
    fn new(info: LeaseInfo) -> Self {
        Cluster {
            info,
            sched: Scheduler::new(),
            members: Vec::new(),
            was_ready: false,
            lanes: HashMap::new(),
            pipes: HashMap::new(),
            expelled: HashSet::new(),
        }
    }
}

impl Clusters {
    // ------------------------------------------------------------ clusters and members

    /// Creates the (empty) cluster of a lease.
    pub fn insert(&mut self, lease: &Arc<str>, info: LeaseInfo) {
        self.clusters.insert(lease.clone(), Cluster::new(info));
    }

    /// Connected workers with room for another lease (of `provider`, if given), not
    /// draining.
    pub fn with_room(&self, provider: Option<&str>) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self
            .workers
            .iter()
            .filter(|(_, w)| w.has_room() && provider.is_none_or(|p| w.provider == p))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort_unstable();
        v
    }

    /// A lease ended: its cluster is gone, its members are free again (their running tasks
    /// no longer count on them), the tasks' holds are dropped. Returns the former members.
    pub fn end(&mut self, lease: &Arc<str>, reason: &str) -> Vec<Arc<str>> {
        self.ended.insert(lease.clone(), reason.to_string());
        let Some(c) = self.clusters.remove(lease) else {
            return Vec::new();
        };
        let gone: Vec<u64> = self
            .holds
            .iter()
            .filter(|(_, h)| h.lease == *lease)
            .map(|(t, _)| *t)
            .collect();
        for t in &gone {
            if let Some(h) = self.holds.remove(t)
                && let Some(w) = self.workers.get_mut(&h.worker)
            {
                w.running.remove(t);
            }
        }
        for m in &c.members {
            if let Some(w) = self.workers.get_mut(m) {
                w.slices.retain(|s| s.lease != *lease);
            }
        }
        info!(lease = %lease, reason, workers = c.members.len(), "lease ended: cluster detached");
        c.members
    }

    fn gpus_ready(&self, c: &Cluster, lease: &str) -> u32 {
        c.members
            .iter()
            .filter_map(|m| self.workers.get(m)?.slice(lease))
            .map(|s| s.gpus.len() as u32)
            .sum()
    }

    /// Worker `key` joins `lease`'s cluster with the share the lease still lacks: exactly the
    /// GPUs missing from its count (as many as are free on the worker), or the whole worker
    /// for a lease without a GPU count or a worker without GPUs. Only the lease's provider's
    /// workers join. True when it joined.
    pub fn attach(&mut self, key: &Arc<str>, lease: &Arc<str>) -> bool {
        let Some(c) = self.clusters.get(lease) else {
            return false;
        };
        let Some(w) = self.workers.get(key) else {
            return false;
        };
        if w.provider != c.info.provider
            || !w.has_room()
            || w.slice(lease).is_some()
            || c.expelled.contains(key)
        {
            return false;
        }
        let ready = self.gpus_ready(c, lease);
        if c.info.gpus > 0 && ready >= c.info.gpus {
            return false;
        }
        let total = w.reg.gpus.len() as u32;
        let whole = c.info.gpus == 0 || total == 0;
        let gpus: Vec<u32> = if whole {
            if !w.slices.is_empty() {
                return false;
            }
            (0..total).collect()
        } else {
            let need = (c.info.gpus - ready) as usize;
            w.free_gpus().into_iter().take(need).collect()
        };
        if !whole && gpus.is_empty() {
            return false;
        }
        // CPU and memory go with the GPUs, in proportion.
        let share = |x: u64| {
            if whole {
                x
            } else {
                x * gpus.len() as u64 / u64::from(total)
            }
        };
        let (milli_cpus, memory) = (
            share(u64::from(w.reg.milli_cpus)) as u32,
            share(w.reg.memory_bytes),
        );
        let model = gpus
            .first()
            .and_then(|g| w.reg.gpus.get(*g as usize))
            .map(|g| g.model.clone())
            .unwrap_or_default();
        let spec = WorkerSpec {
            labels: gpunet_proto::labels::of_worker(&w.reg.zone, &w.reg.labels),
            key: key.clone(),
            res: Res {
                milli_cpus,
                gpus: gpus.len() as u32,
                memory,
            },
            gpu_model: model,
        };
        let Some(c) = self.clusters.get_mut(lease) else {
            return false;
        };
        let idx = c.sched.add_worker(spec);
        c.members.push(key.clone());
        let n = gpus.len();
        if let Some(w) = self.workers.get_mut(key) {
            w.slices.push(Slice {
                lease: lease.clone(),
                idx,
                gpus,
                whole,
                milli_cpus,
                memory,
            });
        }
        info!(lease = %lease, worker = %key, gpus = n, whole, "worker joined cluster");
        true
    }

    /// Worker `key` may never join `lease`'s cluster again (a slash took its GPUs out of the
    /// lease); the caller detaches it.
    pub fn forbid(&mut self, lease: &Arc<str>, key: &Arc<str>) {
        if let Some(c) = self.clusters.get_mut(lease) {
            c.expelled.insert(key.clone());
        }
    }

    /// Members whose shares take `lease`'s cluster past its GPU count (the count shrank on
    /// chain), latest joined first, leaving out `skip` (already leaving): dropping them
    /// brings it to the count or below (the caller then tops it up from workers with room,
    /// with exactly the GPUs missing).
    pub fn excess(&self, lease: &Arc<str>, skip: &[Arc<str>]) -> Vec<Arc<str>> {
        let Some(c) = self.clusters.get(lease) else {
            return Vec::new();
        };
        if c.info.gpus == 0 {
            return Vec::new();
        }
        let share = |m: &Arc<str>| {
            self.workers
                .get(m)
                .and_then(|w| w.slice(lease))
                .map_or(0, |s| s.gpus.len() as u32)
        };
        let kept: Vec<&Arc<str>> = c.members.iter().filter(|m| !skip.contains(m)).collect();
        let mut held: u32 = kept.iter().map(|m| share(m)).sum();
        let mut out = Vec::new();
        for m in kept.into_iter().rev() {
            if held <= c.info.gpus {
                break;
            }
            held -= share(m);
            out.push(m.clone());
        }
        out
    }

    /// Worker `key` leaves `lease`'s cluster. Returns its former slice's scheduler index and
    /// the tasks of the lease it was running, whose holds the caller drops through
    /// [`Self::leave`].
    pub fn detach(&mut self, lease: &Arc<str>, key: &Arc<str>) -> Option<(WorkerIdx, Vec<u64>)> {
        let mine: Vec<u64> = self
            .holds
            .iter()
            .filter(|(_, h)| h.lease == *lease && h.worker == *key)
            .map(|(t, _)| *t)
            .collect();
        let w = self.workers.get_mut(key)?;
        let pos = w.slices.iter().position(|s| s.lease == *lease)?;
        let slice = w.slices.remove(pos);
        for t in &mine {
            w.running.remove(t);
        }
        Some((slice.idx, mine))
    }

    /// The lease now has `gpus` GPUs (its count changed on chain).
    pub fn set_gpus(&mut self, lease: &Arc<str>, gpus: u32) {
        if let Some(c) = self.clusters.get_mut(lease) {
            c.info.gpus = gpus;
        }
    }

    /// The worker's own GPU indices (`CUDA_VISIBLE_DEVICES`) for a grant's GPUs, which the
    /// lease's scheduler numbers within the lease's share.
    pub fn physical_gpus(&self, lease: &str, worker: &str, g: &Grant) -> Vec<u32> {
        let Some(w) = self.workers.get(worker) else {
            return Vec::new();
        };
        let Some(s) = w.slice(lease) else {
            return Vec::new();
        };
        g.gpu_ids()
            .into_iter()
            .filter_map(|i| s.gpus.get(i as usize))
            .filter_map(|p| w.reg.gpus.get(*p as usize))
            .map(|gpu| gpu.index)
            .collect()
    }

    fn state(&self, c: &Cluster, lease: &str) -> pb::ClusterState {
        let ready = self.gpus_ready(c, lease);
        if ready >= c.info.gpus && !c.members.is_empty() {
            pb::ClusterState::Ready
        } else if c.was_ready {
            pb::ClusterState::Degraded
        } else {
            pb::ClusterState::Forming
        }
    }

    /// The cluster's state and members as persisted (remembers having been ready).
    pub fn changed(&mut self, lease: &Arc<str>) -> Option<ClusterRecord> {
        let c = self.clusters.get(lease)?;
        let state = self.state(c, lease);
        let rec = ClusterRecord {
            state: state as i32,
            workers: c.members.iter().map(|m| m.to_string()).collect(),
        };
        if state == pb::ClusterState::Ready
            && let Some(c) = self.clusters.get_mut(lease)
        {
            c.was_ready = true;
        }
        Some(rec)
    }

    /// What a client sees of a lease's cluster.
    pub fn info(&self, lease: &Arc<str>) -> Option<pb::ClusterInfo> {
        let c = self.clusters.get(lease)?;
        let workers = c
            .members
            .iter()
            .filter_map(|m| {
                self.workers
                    .get(m)
                    .and_then(|w| Some((m, w, w.slice(lease)?)))
            })
            .map(|(m, w, s)| pb::WorkerInfo {
                worker_id: m.to_string(),
                zone: w.reg.zone.clone(),
                // The lease's share only: its GPUs, and the CPU and memory that go with them.
                gpus: s
                    .gpus
                    .iter()
                    .filter_map(|p| w.reg.gpus.get(*p as usize))
                    .cloned()
                    .collect(),
                milli_cpus: s.milli_cpus,
                memory_bytes: s.memory,
                cpu_only: w.reg.cpu_only,
                alive: true,
                running_tasks: w
                    .running
                    .iter()
                    .filter(|t| self.holds.get(t).is_some_and(|h| h.lease == *lease))
                    .count() as u32,
                draining: w.draining,
                labels: w.reg.labels.clone(),
            })
            .collect();
        let pgs = c
            .sched
            .group_ids()
            .into_iter()
            .filter_map(|id| c.sched.group_info(id).map(|i| pg_info(id, &i)))
            .collect();
        Some(pb::ClusterInfo {
            lease_id: lease.to_string(),
            provider: c.info.provider.clone(),
            gpus_requested: c.info.gpus,
            gpus_ready: self.gpus_ready(c, lease),
            state: self.state(c, lease) as i32,
            workers,
            placement_groups: pgs,
        })
    }

    /// Leases whose cluster has at least one member, sorted.
    pub fn leases(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self
            .clusters
            .iter()
            .filter(|(_, c)| !c.members.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort_unstable();
        v
    }

    /// Creates a placement group on a lease's cluster.
    pub fn create_group(
        &mut self,
        lease: &Arc<str>,
        bundles: &[pb::Resources],
        strategy: pb::PlacementStrategy,
    ) -> Result<(u64, pb::PlacementGroupInfo), KeeperError> {
        let c = self
            .clusters
            .get_mut(lease)
            .ok_or_else(|| KeeperError::NotFound(format!("lease {lease}")))?;
        let id = c
            .sched
            .create_group(bundles.iter().map(res_of).collect(), pg_strategy(strategy));
        let info = c
            .sched
            .group_info(id)
            .ok_or_else(|| KeeperError::NotFound("placement group".into()))?;
        Ok((id, pg_info(id, &info)))
    }

    /// Removes placement group `pg` of a lease's cluster; false when it has none such.
    pub fn remove_group(&mut self, lease: &Arc<str>, pg: u64) -> Result<bool, KeeperError> {
        let c = self
            .clusters
            .get_mut(lease)
            .ok_or_else(|| KeeperError::NotFound(format!("lease {lease}")))?;
        Ok(c.sched.remove_group(pg))
    }

    // ------------------------------------------------------------ scheduling

    /// The scheduler's request for a task spec on a lease's cluster.
    pub fn request_of(
        &self,
        lease: &Arc<str>,
        spec: &pb::TaskSpec,
    ) -> Option<Result<Request, String>> {
        let c = self.clusters.get(lease)?;
        let r = spec.resources.clone().unwrap_or(pb::Resources {
            milli_cpus: 1000,
            ..Default::default()
        });
        let res = res_of(&r);
        let gpu_model = (!r.gpu_model.is_empty()).then(|| Arc::<str>::from(r.gpu_model.as_str()));
        use pb::scheduling_strategy::Kind;
        let strategy = match spec.strategy.as_ref().and_then(|s| s.kind.as_ref()) {
            None | Some(Kind::Default(_)) => Strategy::Default,
            Some(Kind::Spread(_)) => Strategy::Spread,
            Some(Kind::NodeAffinity(a)) => match c.sched.affinity(&a.worker_id, a.soft, &res) {
                Ok(s) => s,
                Err(e) => return Some(Err(e)),
            },
            Some(Kind::PlacementGroup(p)) => Strategy::Group {
                pg: p.placement_group_id,
                bundle: (p.bundle_index >= 0).then_some(p.bundle_index as u32),
            },
        };
        let labels = match gpunet_proto::labels::Selector::parse(&spec.label_selector) {
            Ok(l) => l.map(Arc::new),
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Request {
            res,
            gpu_model,
            labels,
            strategy,
        }))
    }

    /// Hands a ready task to its cluster's scheduler; with the task's class when it queued
    /// and may be pipelined (default strategy, pipelining on).
    pub fn submit(
        &mut self,
        lease: &Arc<str>,
        id: u64,
        req: &Request,
        pipelining: bool,
    ) -> (Decision, Option<u32>) {
        let Some(c) = self.clusters.get_mut(lease) else {
            return (Decision::Queued, None);
        };
        let d = c.sched.submit(id, req);
        let class = (d == Decision::Queued && pipelining && req.strategy == Strategy::Default)
            .then(|| c.sched.class_id(req));
        (d, class)
    }

    /// Tasks the scheduler can start now that resources freed up.
    pub fn dispatch(&mut self, lease: &Arc<str>) -> Vec<(u64, Grant)> {
        let mut out = Vec::new();
        if let Some(c) = self.clusters.get_mut(lease) {
            c.sched.dispatch_queued(&mut out);
        }
        out
    }

    /// Forget queued tasks that will never run.
    pub fn unqueue(&mut self, tasks: &[(Arc<str>, u64)]) {
        for (lease, id) in tasks {
            if let Some(c) = self.clusters.get_mut(lease) {
                c.sched.cancel_queued(*id);
            }
        }
    }

    /// The worker a grant is on, and the lane to open for it: a lane (pipelining) only for
    /// tasks of the default strategy on a worker that takes lanes, never for proofs.
    pub fn place(
        &mut self,
        lease: &Arc<str>,
        g: &Grant,
        pipelining: bool,
        is_proof: bool,
    ) -> Option<(Arc<str>, u64)> {
        let c = self.clusters.get(lease)?;
        let key = c.sched.worker_key(g.worker).cloned()?;
        let lane = if pipelining
            && !is_proof
            && self.workers.get(&key).is_some_and(|w| w.reg.lanes)
            && c.sched
                .class_request(g.class)
                .is_some_and(|r| r.strategy == Strategy::Default)
        {
            // Not the task id: a retried task may start again while its old lane still runs.
            self.next_lane += 1;
            self.next_lane
        } else {
            0
        };
        Some((key, lane))
    }

    /// Task `id` runs on `worker` holding `grant` (None: waiting in lane `lane`).
    pub fn hold(
        &mut self,
        lease: &Arc<str>,
        id: u64,
        worker: &Arc<str>,
        grant: Option<Grant>,
        lane: u64,
    ) {
        self.holds.insert(
            id,
            Hold {
                lease: lease.clone(),
                worker: worker.clone(),
                grant,
                lane,
            },
        );
        if let Some(w) = self.workers.get_mut(worker) {
            w.running.insert(id);
        }
    }

    /// The worker's GPU indices a running task's grant holds.
    pub fn gpu_ids(&self, id: u64) -> Vec<u32> {
        self.holds
            .get(&id)
            .and_then(|h| Some((h, h.grant.as_ref()?)))
            .map(|(h, g)| self.physical_gpus(&h.lease, &h.worker, g))
            .unwrap_or_default()
    }

    /// Detaches a task that stopped running from its worker and lane; returns its grant.
    pub fn take_grant(&mut self, id: u64, worker: Option<&Arc<str>>) -> Option<Grant> {
        let h = self.holds.remove(&id);
        if let Some(w) = worker
            && let Some(conn) = self.workers.get_mut(w)
        {
            conn.running.remove(&id);
        }
        h.and_then(|h| h.grant)
    }

    /// Detaches a task and gives its resources back to its cluster's scheduler.
    pub fn release(&mut self, lease: &Arc<str>, id: u64, worker: Option<&Arc<str>>) {
        if let (Some(g), Some(c)) = (self.take_grant(id, worker), self.clusters.get_mut(lease)) {
            c.sched.release(&g);
        }
    }
    // ------------------------------------------------------------ workers

    /// Adds a verified worker's connection; returns its connection id.
    pub fn connect(
        &mut self,
        key: &Arc<str>,
        reg: pb::Register,
        tx: mpsc::UnboundedSender<pb::KeeperMessage>,
        session: [u8; 16],
    ) -> u64 {
        let conn_id = self.next_conn;
        self.next_conn += 1;
        self.workers.insert(
            key.clone(),
            WorkerConn {
                conn_id,
                provider: reg.provider.clone(),
                slices: Vec::new(),
                tx,
                last_seen: Instant::now(),
                reg,
                running: HashSet::new(),
                session,
                draining: false,
            },
        );
        conn_id
    }

    /// Removes connection `conn_id` of worker `key` (a newer connection is left alone).
    pub fn disconnect(&mut self, key: &Arc<str>, conn_id: u64) -> Option<WorkerConn> {
        match self.workers.get(key) {
            Some(w) if w.conn_id == conn_id => {}
            _ => return None,
        }
        self.pulls.retain(|_, (wk, _)| wk != key);
        self.workers.remove(key)
    }

    /// A worker left its cluster: out of the scheduler (tasks queued for it alone come back
    /// as unschedulable), its lanes closed, its tasks' holds dropped.
    pub fn leave(
        &mut self,
        lease: &Arc<str>,
        key: &Arc<str>,
        idx: WorkerIdx,
        running: &[u64],
    ) -> Vec<(u64, String)> {
        let failed = match self.clusters.get_mut(lease) {
            Some(c) => {
                c.members.retain(|m| m != key);
                let failed = c.sched.remove_worker(idx);
                c.lanes.retain(|_, l| l.worker != *key);
                failed
            }
            None => Vec::new(),
        };
        for t in running {
            self.holds.remove(t);
        }
        failed
    }

    /// The connection `conn_id` of worker `key`, if it is the current one.
    pub fn conn_mut(&mut self, key: &Arc<str>, conn_id: u64) -> Option<&mut WorkerConn> {
        self.workers.get_mut(key).filter(|w| w.conn_id == conn_id)
    }

    /// A worker says it drains: no new tasks for it. The ack goes out after every assignment
    /// it will ever get (callers hold the core lock).
    pub fn draining(&mut self, key: &Arc<str>, conn_id: u64) -> bool {
        let Some(w) = self.workers.get_mut(key).filter(|w| w.conn_id == conn_id) else {
            return false;
        };
        w.draining = true;
        let _ = w.tx.send(pb::KeeperMessage {
            msg: Some(pb::keeper_message::Msg::DrainAck(pb::DrainAck {})),
        });
        for s in &w.slices {
            if let Some(c) = self.clusters.get_mut(&s.lease) {
                c.sched.set_draining(s.idx);
            }
        }
        true
    }

    /// Whether `session` is a connected worker's session secret.
    pub fn session_ok(&self, session: &[u8]) -> bool {
        self.workers.values().any(|w| w.session[..] == *session)
    }

    /// Workers silent for longer than `after`: (key, connection, silence).
    pub fn silent(&self, after: Duration) -> Vec<(Arc<str>, u64, Duration)> {
        let now = Instant::now();
        self.workers
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_seen) > after)
            .map(|(k, w)| (k.clone(), w.conn_id, now.duration_since(w.last_seen)))
            .collect()
    }

    /// Sends a message to a connected worker (dropped if it is gone).
    pub fn send(&self, worker: &Arc<str>, msg: pb::keeper_message::Msg) {
        if let Some(conn) = self.workers.get(worker) {
            let _ = conn.tx.send(pb::KeeperMessage { msg: Some(msg) });
        }
    }

    /// Asks `worker` for an object; the receiver gets its bytes (None: not found).
    pub fn pull(
        &mut self,
        worker: &Arc<str>,
        r: pb::ObjectRef,
    ) -> Option<oneshot::Receiver<Option<Bytes>>> {
        let conn = self.workers.get(worker)?;
        let id = self.next_pull;
        self.next_pull += 1;
        let (tx, rx) = oneshot::channel();
        conn.tx
            .send(pb::KeeperMessage {
                msg: Some(pb::keeper_message::Msg::Pull(pb::ObjectPull {
                    request_id: id,
                    object: Some(r),
                })),
            })
            .ok()?;
        self.pulls.insert(id, (worker.clone(), tx));
        Some(rx)
    }

    /// An object reply from `worker`.
    pub fn pull_reply(&mut self, worker: &Arc<str>, reply: pb::ObjectReply) {
        if let Some((wk, tx)) = self.pulls.remove(&reply.request_id)
            && wk == *worker
        {
            let _ = tx.send(reply.found.then_some(reply.data));
        }
    }

    /// Ends every worker stream and pull (shutdown).
    pub fn clear(&mut self) {
        self.workers.clear();
        self.pulls.clear();
    }
}
