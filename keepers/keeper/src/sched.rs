//! The scheduler: a pure, synchronous data structure (no I/O, no clocks) that decides where a
//! task runs.
//!
//! It follows Ray's model (docs.ray.io, "Scheduling"): workers are nodes with resource
//! capacities; a task asks for resources and a strategy; placement groups reserve bundles of
//! resources that tasks then run inside. Differences from Ray are listed in `docs/dispatch.md`.
//!
//! Hot-path design:
//! - Tasks with the same request (resources + strategy) form a *scheduling class* (as in Ray);
//!   each class has a FIFO queue of task ids (8 bytes per queued task here).
//! - Workers with any free capacity sit in an `avail` vector (swap-remove), so a placement scans
//!   a bounded window of candidates from a rotating cursor instead of every worker.
//! - Queued tasks are only looked at when resources are released or workers join, and then one
//!   class at a time, so a million queued tasks cost nothing while the cluster is full.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use gpunet_proto::labels::{Labels, Selector};

/// Index of a worker inside one scheduler; never reused.
pub type WorkerIdx = u32;
/// Task id (unique per keeper).
pub type TaskId = u64;

/// How many `avail` entries one placement looks at before giving up (the task then queues and
/// is retried at the next release, from a different window).
pub const SCAN_LIMIT: usize = 256;

/// A resource amount: a task's request, a worker's capacity or a bundle's reservation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Res {
    /// Thousandths of a CPU.
    pub milli_cpus: u32,
    /// Whole GPUs.
    pub gpus: u32,
    /// Bytes of memory.
    pub memory: u64,
}

impl Res {
    /// Whether `self` fits into `free`.
    pub fn fits_in(&self, free: &Res) -> bool {
        self.milli_cpus <= free.milli_cpus && self.gpus <= free.gpus && self.memory <= free.memory
    }
    fn sub(&mut self, r: &Res) {
        self.milli_cpus = self.milli_cpus.saturating_sub(r.milli_cpus);
        self.gpus = self.gpus.saturating_sub(r.gpus);
        self.memory = self.memory.saturating_sub(r.memory);
    }
    fn add(&mut self, r: &Res) {
        self.milli_cpus = self.milli_cpus.saturating_add(r.milli_cpus);
        self.gpus = self.gpus.saturating_add(r.gpus);
        self.memory = self.memory.saturating_add(r.memory);
    }
    fn any(&self) -> bool {
        self.milli_cpus > 0 || self.gpus > 0
    }
}

/// Where a task may run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Ray's default "hybrid" policy: stay on a worker while it is at most half used, then
    /// move on; fall back to any worker that fits.
    Default,
    /// Round-robin over the workers that fit.
    Spread,
    /// Node affinity to one worker. A hard affinity waits for that worker; a soft one that
    /// could never be satisfied has already been turned into `Default` by
    /// [`Scheduler::affinity`].
    Affinity {
        /// The worker.
        worker: WorkerIdx,
    },
    /// Inside a placement group's bundle (`None` = any bundle).
    Group {
        /// Placement group id.
        pg: u64,
        /// Bundle index.
        bundle: Option<u32>,
    },
}

/// A task's request: resources, GPU model and strategy. Equal requests share a queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Resources held while running.
    pub res: Res,
    /// Required GPU model substring.
    pub gpu_model: Option<Arc<str>>,
    /// Required worker labels (`gpunet_proto::labels`).
    pub labels: Option<Arc<Selector>>,
    /// Strategy.
    pub strategy: Strategy,
}

/// What a worker offers.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// Worker id (base58 of its key).
    pub key: Arc<str>,
    /// Capacity.
    pub res: Res,
    /// GPU model (of its first GPU; workers are homogeneous).
    pub gpu_model: String,
    /// Its labels (`zone`, `region`, …), for label selectors and zone spreading.
    pub labels: Labels,
}

/// Resources a running task holds; give it back with [`Scheduler::release`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Worker the task runs on.
    pub worker: WorkerIdx,
    /// Resources held.
    pub res: Res,
    /// Bit mask of the GPU indices held.
    pub gpus: u64,
    /// Placement-group bundle the resources came from.
    pub bundle: Option<(u64, u32)>,
    /// Scheduling class of the request it was granted for (see [`Scheduler::pop_queued`]).
    pub class: u32,
}

impl Grant {
    /// GPU indices held, ascending.
    pub fn gpu_ids(&self) -> Vec<u32> {
        (0..64).filter(|i| self.gpus & (1u64 << i) != 0).collect()
    }
}

/// Outcome of a submission.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run now with these resources.
    Run(Grant),
    /// Queued until resources free up.
    Queued,
    /// Can never run.
    Unschedulable(String),
}

/// Placement-group strategies (Ray's PACK, SPREAD, STRICT_PACK, STRICT_SPREAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgStrategy {
    /// Prefer one worker, allow several.
    Pack,
    /// Prefer distinct workers, allow sharing.
    Spread,
    /// All bundles on one worker.
    StrictPack,
    /// Every bundle on a different worker.
    StrictSpread,
}

struct Worker {
    spec: WorkerSpec,
    free: Res,
    free_gpus: u64,
    alive: bool,
    draining: bool,
    avail_pos: Option<usize>,
}

struct Bundle {
    res: Res,
    worker: Option<WorkerIdx>,
    gpus: u64,
    free: Res,
    free_gpus: u64,
}

struct Group {
    strategy: PgStrategy,
    bundles: Vec<Bundle>,
}

impl Group {
    fn placed(&self) -> bool {
        self.bundles.iter().all(|b| b.worker.is_some())
    }
}

/// Snapshot of a placement group.
#[derive(Clone, Debug)]
pub struct GroupInfo {
    /// Strategy.
    pub strategy: PgStrategy,
    /// True when every bundle is placed.
    pub created: bool,
    /// Worker key of each bundle (None while unplaced).
    pub bundle_workers: Vec<Option<Arc<str>>>,
}

/// The scheduler of one cluster (one lease).
#[derive(Default)]
pub struct Scheduler {
    workers: Vec<Option<Worker>>,
    by_key: HashMap<Arc<str>, WorkerIdx>,
    avail: Vec<WorkerIdx>,
    cursor: usize,
    spread_cursor: usize,
    classes: HashMap<Request, usize>,
    class_reqs: Vec<Request>,
    queues: Vec<VecDeque<TaskId>>,
    nonempty: Vec<usize>,
    /// Rotates which class `dispatch_queued` serves first, so classes take turns.
    turn: usize,
    cancelled: HashSet<TaskId>,
    queued: usize,
    groups: HashMap<u64, Group>,
    next_pg: u64,
    /// SPREAD placements per zone so far: SPREAD takes the least used zone first.
    zone_spread: HashMap<String, u64>,
}

fn take_gpus(mask: u64, n: u32) -> u64 {
    let mut out = 0u64;
    let mut left = n;
    let mut i = 0;
    while left > 0 && i < 64 {
        if mask & (1 << i) != 0 {
            out |= 1 << i;
            left -= 1;
        }
        i += 1;
    }
    out
}

fn model_ok(model: &str, want: &Option<Arc<str>>) -> bool {
    match want {
        None => true,
        Some(w) => model.contains(&**w),
    }
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self {
            next_pg: 1,
            ..Default::default()
        }
    }

    /// Number of queued tasks (excluding cancelled ones not yet popped).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Number of live workers.
    pub fn live_workers(&self) -> usize {
        self.workers.iter().flatten().filter(|w| w.alive).count()
    }

    /// Worker index of a live worker key.
    pub fn worker_by_key(&self, key: &str) -> Option<WorkerIdx> {
        self.by_key.get(key).copied()
    }

    /// Key of a worker index.
    pub fn worker_key(&self, idx: WorkerIdx) -> Option<&Arc<str>> {
        self.workers
            .get(idx as usize)
            .and_then(|w| w.as_ref())
            .map(|w| &w.spec.key)
    }

    /// Free resources of a live worker.
    pub fn worker_free(&self, idx: WorkerIdx) -> Option<Res> {
        self.worker(idx).filter(|w| w.alive).map(|w| w.free)
    }

    fn worker(&self, idx: WorkerIdx) -> Option<&Worker> {
        self.workers.get(idx as usize).and_then(|w| w.as_ref())
    }

    fn worker_mut(&mut self, idx: WorkerIdx) -> Option<&mut Worker> {
        self.workers.get_mut(idx as usize).and_then(|w| w.as_mut())
    }

    fn avail_insert(&mut self, idx: WorkerIdx) {
        let pos = self.avail.len();
        if let Some(w) = self.worker_mut(idx)
            && w.avail_pos.is_none()
            && w.alive
            && !w.draining
            && w.free.any()
        {
            w.avail_pos = Some(pos);
            self.avail.push(idx);
        }
    }

    fn avail_remove(&mut self, idx: WorkerIdx) {
        let Some(pos) = self.worker_mut(idx).and_then(|w| w.avail_pos.take()) else {
            return;
        };
        self.avail.swap_remove(pos);
        if let Some(&moved) = self.avail.get(pos)
            && let Some(w) = self.worker_mut(moved)
        {
            w.avail_pos = Some(pos);
        }
    }

    /// Add a live worker. Its GPUs are indices `0..res.gpus` (at most 64).
    pub fn add_worker(&mut self, spec: WorkerSpec) -> WorkerIdx {
        let idx = self.workers.len() as WorkerIdx;
        let gpus = spec.res.gpus.min(64);
        let free_gpus = if gpus == 64 {
            u64::MAX
        } else {
            (1u64 << gpus) - 1
        };
        self.by_key.insert(spec.key.clone(), idx);
        self.workers.push(Some(Worker {
            free: spec.res,
            spec,
            free_gpus,
            alive: true,
            draining: false,
            avail_pos: None,
        }));
        self.avail_insert(idx);
        idx
    }

    /// Stop placing new work on a worker (it drains); running tasks keep their grants.
    pub fn set_draining(&mut self, idx: WorkerIdx) {
        if let Some(w) = self.worker_mut(idx) {
            w.draining = true;
        }
        self.avail_remove(idx);
    }

    /// Remove a dead worker. Returns queued tasks that can now never run (hard affinity to it),
    /// with the reason. Placement-group bundles on it become unplaced and are re-placed when
    /// resources allow. Grants on it must not be released afterwards (they are ignored).
    pub fn remove_worker(&mut self, idx: WorkerIdx) -> Vec<(TaskId, String)> {
        self.avail_remove(idx);
        let key = match self.worker_mut(idx) {
            Some(w) if w.alive => {
                w.alive = false;
                w.spec.key.clone()
            }
            _ => return Vec::new(),
        };
        if self.by_key.get(&key) == Some(&idx) {
            self.by_key.remove(&key);
        }
        for g in self.groups.values_mut() {
            for b in g.bundles.iter_mut().filter(|b| b.worker == Some(idx)) {
                b.worker = None;
                b.gpus = 0;
                b.free = b.res;
                b.free_gpus = 0;
            }
        }
        let mut failed = Vec::new();
        for class in self.nonempty.clone() {
            if self.class_reqs[class].strategy == (Strategy::Affinity { worker: idx }) {
                let q = std::mem::take(&mut self.queues[class]);
                for t in q {
                    if !self.cancelled.remove(&t) {
                        self.queued -= 1;
                        failed.push((t, format!("hard node affinity: worker {key} is dead")));
                    }
                }
            }
        }
        self.nonempty.retain(|&c| !self.queues[c].is_empty());
        failed
    }

    /// Resolve a node-affinity request. Hard affinity to an unknown or dead worker, or to one
    /// that can never fit the task, is an error; soft affinity falls back to `Default` then.
    pub fn affinity(&self, key: &str, soft: bool, res: &Res) -> Result<Strategy, String> {
        match self
            .by_key
            .get(key)
            .and_then(|&i| self.worker(i).map(|w| (i, w)))
        {
            Some((i, w)) if w.alive && res.fits_in(&w.spec.res) => {
                Ok(Strategy::Affinity { worker: i })
            }
            Some((_, w)) if w.alive => {
                if soft {
                    Ok(Strategy::Default)
                } else {
                    Err(format!(
                        "hard node affinity: worker {key} can never fit the request"
                    ))
                }
            }
            _ if soft => Ok(Strategy::Default),
            _ => Err(format!(
                "hard node affinity: worker {key} is dead or unknown"
            )),
        }
    }

    /// Submit a task whose dependencies are ready.
    pub fn submit(&mut self, task: TaskId, req: &Request) -> Decision {
        if let Strategy::Group { pg, bundle } = &req.strategy {
            match self.groups.get(pg) {
                None => return Decision::Unschedulable(format!("unknown placement group {pg}")),
                Some(g) => {
                    if let Some(b) = bundle {
                        match g.bundles.get(*b as usize) {
                            None => {
                                return Decision::Unschedulable(format!(
                                    "placement group {pg} has no bundle {b}"
                                ));
                            }
                            Some(bd) if !req.res.fits_in(&bd.res) => {
                                return Decision::Unschedulable(format!(
                                    "request does not fit bundle {b} of placement group {pg}"
                                ));
                            }
                            _ => {}
                        }
                    } else if !g.bundles.iter().any(|bd| req.res.fits_in(&bd.res)) {
                        return Decision::Unschedulable(format!(
                            "request fits no bundle of placement group {pg}"
                        ));
                    }
                }
            }
        }
        let class = self.class_of(req);
        if self.queues[class].is_empty()
            && let Some(mut g) = self.try_place(req)
        {
            g.class = class as u32;
            return Decision::Run(g);
        }
        self.enqueue(class, task);
        Decision::Queued
    }

    fn class_of(&mut self, req: &Request) -> usize {
        if let Some(&c) = self.classes.get(req) {
            return c;
        }
        let c = self.class_reqs.len();
        self.classes.insert(req.clone(), c);
        self.class_reqs.push(req.clone());
        self.queues.push(VecDeque::new());
        c
    }

    fn enqueue(&mut self, class: usize, task: TaskId) {
        if self.queues[class].is_empty() {
            self.nonempty.push(class);
        }
        self.queues[class].push_back(task);
        self.queued += 1;
    }

    /// The scheduling class of a request (created on first use).
    pub fn class_id(&mut self, req: &Request) -> u32 {
        self.class_of(req) as u32
    }

    /// The request of a scheduling class (the `class` of a [`Grant`]).
    pub fn class_request(&self, class: u32) -> Option<&Request> {
        self.class_reqs.get(class as usize)
    }

    /// The oldest queued task of a class, without placing it: the caller runs it inside a grant
    /// it already holds for the same class (pipelining, see `docs/dispatch.md`).
    pub fn pop_queued(&mut self, class: u32) -> Option<TaskId> {
        let class = class as usize;
        let q = self.queues.get_mut(class)?;
        let mut got = None;
        while let Some(head) = q.pop_front() {
            if !self.cancelled.remove(&head) {
                got = Some(head);
                break;
            }
        }
        if got.is_some() {
            self.queued -= 1;
        }
        if q.is_empty()
            && let Some(i) = self.nonempty.iter().position(|&c| c == class)
        {
            self.nonempty.swap_remove(i);
        }
        got
    }

    /// The class's oldest queued task, without taking it (cancelled ones are skipped).
    pub fn peek_queued(&mut self, class: u32) -> Option<TaskId> {
        let q = self.queues.get_mut(class as usize)?;
        while let Some(&head) = q.front() {
            if self.cancelled.remove(&head) {
                q.pop_front();
            } else {
                return Some(head);
            }
        }
        if let Some(i) = self.nonempty.iter().position(|&c| c == class as usize) {
            self.nonempty.swap_remove(i);
        }
        None
    }

    /// Whether anything other than `class`'s own queue waits for resources that `worker` could
    /// give: queued tasks of another class that fit the worker's capacity (placement-group
    /// tasks use their bundles' reservations and do not count, nor do affinities to other
    /// workers), or an unplaced placement-group bundle that fits it. Then a grant held for
    /// pipelining goes back instead of taking more tasks of its class. Tasks that could never
    /// run on the worker do not turn pipelining off. (Cancelled entries not yet popped may
    /// make a class look waiting until the next dispatch drops them: pipelining pauses, it
    /// never starves anyone.)
    pub fn others_waiting(&self, class: u32, worker: WorkerIdx) -> bool {
        let Some(w) = self.worker(worker) else {
            return false;
        };
        let fits = |r: &Res| r.fits_in(&w.spec.res);
        self.nonempty.iter().any(|&c| {
            let req = &self.class_reqs[c];
            c != class as usize
                && !self.queues[c].is_empty()
                && fits(&req.res)
                && model_ok(&w.spec.gpu_model, &req.gpu_model)
                && match req.strategy {
                    Strategy::Default | Strategy::Spread => true,
                    Strategy::Affinity { worker: a } => a == worker,
                    Strategy::Group { .. } => false,
                }
        }) || self
            .groups
            .values()
            .any(|g| g.bundles.iter().any(|b| b.worker.is_none() && fits(&b.res)))
    }

    /// Forget a queued task (lazily: it is skipped when it reaches the head of its queue).
    pub fn cancel_queued(&mut self, task: TaskId) {
        if self.cancelled.insert(task) {
            self.queued = self.queued.saturating_sub(1);
        }
    }

    /// Give back what a finished task held.
    pub fn release(&mut self, g: &Grant) {
        // Back into its bundle; a removed group's share goes back to the worker instead.
        if let Some((pg, b)) = g.bundle
            && let Some(gr) = self.groups.get_mut(&pg)
        {
            if let Some(bd) = gr.bundles.get_mut(b as usize)
                && bd.worker == Some(g.worker)
            {
                bd.free.add(&g.res);
                bd.free_gpus |= g.gpus;
            }
            return;
        }
        let Some(w) = self.worker_mut(g.worker) else {
            return;
        };
        if !w.alive {
            return;
        }
        w.free.add(&g.res);
        w.free_gpus |= g.gpus;
        self.avail_insert(g.worker);
    }

    /// Place as many queued tasks as resources allow, appending `(task, grant)` to `out`.
    pub fn dispatch_queued(&mut self, out: &mut Vec<(TaskId, Grant)>) {
        if self.groups.values().any(|g| !g.placed()) {
            self.place_pending_groups();
        }
        // Classes take turns at freed resources: one class's backlog must not starve another
        // class whose tasks fit just as well.
        if self.nonempty.len() > 1 {
            self.turn = self.turn.wrapping_add(1);
            let k = self.turn % self.nonempty.len();
            self.nonempty.rotate_left(k);
        }
        let mut i = 0;
        while i < self.nonempty.len() {
            let class = self.nonempty[i];
            let req = self.class_reqs[class].clone();
            while let Some(&head) = self.queues[class].front() {
                if self.cancelled.remove(&head) {
                    self.queues[class].pop_front();
                    continue;
                }
                match self.try_place(&req) {
                    Some(mut g) => {
                        g.class = class as u32;
                        self.queues[class].pop_front();
                        self.queued -= 1;
                        out.push((head, g));
                    }
                    None => break,
                }
            }
            if self.queues[class].is_empty() {
                self.nonempty.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn zone_of(&self, idx: WorkerIdx) -> Option<&str> {
        self.worker(idx)?
            .spec
            .labels
            .get("zone")
            .map(String::as_str)
    }

    fn fits_worker(&self, idx: WorkerIdx, req: &Request) -> bool {
        match self.worker(idx) {
            Some(w) => {
                w.alive
                    && !w.draining
                    && req.res.fits_in(&w.free)
                    && model_ok(&w.spec.gpu_model, &req.gpu_model)
                    && req
                        .labels
                        .as_ref()
                        .is_none_or(|s| s.matches(&w.spec.labels))
            }
            None => false,
        }
    }

    fn take_worker(&mut self, idx: WorkerIdx, res: &Res) -> Grant {
        let mut gpus = 0;
        let mut empty = false;
        if let Some(w) = self.worker_mut(idx) {
            gpus = take_gpus(w.free_gpus, res.gpus);
            w.free_gpus &= !gpus;
            w.free.sub(res);
            empty = !w.free.any();
        }
        if empty {
            self.avail_remove(idx);
        }
        Grant {
            worker: idx,
            res: *res,
            gpus,
            bundle: None,
            class: 0,
        }
    }

    fn utilisation_after(&self, idx: WorkerIdx, res: &Res) -> f64 {
        let Some(w) = self.worker(idx) else {
            return 1.0;
        };
        let t = &w.spec.res;
        let cpu = if t.milli_cpus == 0 {
            0.0
        } else {
            1.0 - (w.free.milli_cpus.saturating_sub(res.milli_cpus)) as f64 / t.milli_cpus as f64
        };
        let gpu = if t.gpus == 0 {
            0.0
        } else {
            1.0 - (w.free.gpus.saturating_sub(res.gpus)) as f64 / t.gpus as f64
        };
        cpu.max(gpu)
    }

    fn try_place(&mut self, req: &Request) -> Option<Grant> {
        match &req.strategy {
            Strategy::Affinity { worker } => {
                let w = *worker;
                self.fits_worker(w, req)
                    .then(|| self.take_worker(w, &req.res))
            }
            Strategy::Group { pg, bundle } => self.place_in_group(*pg, *bundle, req),
            Strategy::Spread => {
                // Round-robin over the workers that fit; across zones first: of the fitting
                // workers scanned, one in the zone with the fewest SPREAD placements so far.
                // Workers without a zone keep plain round-robin.
                let n = self.avail.len();
                // Within a zone, the least used worker.
                let mut best: Option<((u64, u64), usize)> = None;
                for i in 0..n.min(SCAN_LIMIT) {
                    let pos = (self.spread_cursor + i) % n;
                    let w = self.avail[pos];
                    if !self.fits_worker(w, req) {
                        continue;
                    }
                    let Some(zone) = self.zone_of(w) else {
                        best = Some(((0, 0), pos));
                        break;
                    };
                    let placed = self.zone_spread.get(zone).copied().unwrap_or(0);
                    let used = (self.utilisation_after(w, &req.res) * 1e6) as u64;
                    if best.is_none_or(|(b, _)| (placed, used) < b) {
                        best = Some(((placed, used), pos));
                    }
                }
                let Some((_, pos)) = best else {
                    self.spread_cursor = self.spread_cursor.wrapping_add(SCAN_LIMIT);
                    return None;
                };
                let w = self.avail[pos];
                self.spread_cursor = pos + 1;
                if let Some(zone) = self.zone_of(w).map(str::to_string) {
                    *self.zone_spread.entry(zone).or_default() += 1;
                }
                Some(self.take_worker(w, &req.res))
            }
            Strategy::Default => {
                let n = self.avail.len();
                let mut fallback = None;
                for i in 0..n.min(SCAN_LIMIT) {
                    let pos = (self.cursor + i) % n;
                    let w = self.avail[pos];
                    if self.fits_worker(w, req) {
                        if self.utilisation_after(w, &req.res) <= 0.5 {
                            self.cursor = pos;
                            return Some(self.take_worker(w, &req.res));
                        }
                        if fallback.is_none() {
                            fallback = Some(pos);
                        }
                    }
                }
                match fallback {
                    Some(pos) => {
                        let w = self.avail[pos];
                        self.cursor = pos + 1;
                        Some(self.take_worker(w, &req.res))
                    }
                    None => {
                        self.cursor = self.cursor.wrapping_add(SCAN_LIMIT);
                        None
                    }
                }
            }
        }
    }
}

#[path = "sched_groups.rs"]
mod groups;

#[cfg(test)]
#[path = "sched_tests.rs"]
mod tests;
