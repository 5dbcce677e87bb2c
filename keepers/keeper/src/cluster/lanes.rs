//! Pipelining lanes (Ray's `max_tasks_in_flight_per_worker`): the part of [`Clusters`] that
//! keeps a chain of short tasks of one scheduling class flowing on a worker without a round
//! trip to the keeper between them — the lanes, the run times per task name that decide what
//! may be pipelined, and the hand-over of a grant from one task of a lane to the next.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Cluster, Clusters, Hold};
use crate::sched::{Grant, WorkerIdx};

/// Most task names whose run time one class remembers; beyond it the memory starts over.
const MAX_NAMES_PER_CLASS: usize = 4096;

/// Pipelining (Ray's `max_tasks_in_flight_per_worker`): a grant on a worker that runs a chain
/// of tasks of one scheduling class, one after another. The worker runs the next task the
/// moment the previous one ends, without waiting for the keeper; the keeper moves the grant
/// to the next task when the previous result arrives. On this project's machines the
/// keeper ↔ worker exchange, not the work, bounds short tasks: a worker with 2 slots idles
/// for a round trip after every task unless a few more are already waiting on it.
pub(crate) struct Lane {
    pub worker: Arc<str>,
    pub widx: WorkerIdx,
    pub class: u32,
    /// The task that holds the grant now (it runs, or has just finished on the worker).
    pub holder: u64,
    /// Tasks sent to the worker behind it, in order (each counts as an attempt).
    pub queue: VecDeque<u64>,
    /// Listed in its pipe's `open` (may take more tasks).
    pub listed: bool,
}

/// Run times and open lanes of one scheduling class.
#[derive(Default)]
pub(crate) struct Pipe {
    /// Exponential moving average of successful run times on workers (µs) per task name
    /// within the class (one class is often many different functions: all 1-CPU tasks share
    /// it). A name with no entry is never pipelined: nothing is pipelined blind.
    pub mean_us: HashMap<String, f64>,
    /// Lanes of this class that may take more tasks (stale ids are skipped).
    pub open: VecDeque<u64>,
}

/// What one step of filling a lane found (see [`Clusters::lane_next`]).
pub(crate) enum LaneStep {
    /// This queued task (popped from the scheduler) may go into the lane.
    Take(u64),
    /// Nothing to do now (no room, or the oldest queued task may not be pipelined).
    Stop,
}

impl Clusters {
    /// Opens lane `lane` on `worker` with `holder` holding its grant.
    pub fn open_lane(
        &mut self,
        lease: &Arc<str>,
        lane: u64,
        worker: Arc<str>,
        g: &Grant,
        holder: u64,
    ) {
        if let Some(c) = self.clusters.get_mut(lease) {
            c.lanes.insert(
                lane,
                Lane {
                    worker,
                    widx: g.worker,
                    class: g.class,
                    holder,
                    queue: VecDeque::new(),
                    listed: false,
                },
            );
        }
    }

    /// Whether a lane may take more tasks now: room in it, its worker not draining, and
    /// nothing else waiting for resources its worker could give.
    fn lane_room(&self, c: &Cluster, lane: &Lane, depth: u32) -> bool {
        lane.queue.len() < depth as usize
            && self.workers.get(&lane.worker).is_some_and(|w| !w.draining)
            && !c.sched.others_waiting(lane.class, lane.widx)
    }

    /// One step of filling a lane: the oldest queued task of the lane's class when there is
    /// room and `pipelinable` accepts it (given the class's run times); when the class's
    /// queue is empty, the lane is listed as open for later submissions of its class.
    pub fn lane_next(
        &mut self,
        lease: &Arc<str>,
        lane: u64,
        depth: u32,
        pipelinable: impl Fn(u64, Option<&Pipe>) -> bool,
    ) -> LaneStep {
        let Some(c) = self.clusters.get(lease) else {
            return LaneStep::Stop;
        };
        let Some(l) = c.lanes.get(&lane) else {
            return LaneStep::Stop;
        };
        if !self.lane_room(c, l, depth) {
            return LaneStep::Stop;
        }
        let class = l.class;
        let c = self.clusters.get_mut(lease).expect("cluster checked above");
        match c.sched.peek_queued(class) {
            Some(id) if pipelinable(id, c.pipes.get(&class)) => {
                c.sched.pop_queued(class);
                LaneStep::Take(id)
            }
            // The oldest waits for a grant of its own (order is kept: nothing overtakes it).
            Some(_) => LaneStep::Stop,
            None => {
                // Room left: later submissions of the class may come here directly.
                let l = c.lanes.get_mut(&lane).expect("lane checked above");
                if !l.listed {
                    l.listed = true;
                    let p = c.pipes.entry(class).or_default();
                    p.open.push_back(lane);
                    // Closed lanes leave their ids behind; drop them once they dominate.
                    if p.open.len() > 2 * c.lanes.len() + 16 {
                        let lanes = &c.lanes;
                        p.open.retain(|id| lanes.get(id).is_some_and(|l| l.listed));
                    }
                }
                LaneStep::Stop
            }
        }
    }

    /// The next open lane of `class` (taken off the open list), if any.
    pub fn pop_open_lane(&mut self, lease: &Arc<str>, class: u32) -> Option<Option<u64>> {
        let c = self.clusters.get_mut(lease)?;
        let lane = c.pipes.get_mut(&class).and_then(|p| p.open.pop_front())?;
        Some(c.lanes.get_mut(&lane).map(|l| {
            l.listed = false;
            lane
        }))
    }

    /// After filling a lane from the open list: whether to stop (the lane was listed again,
    /// so the class's queue ran dry, or nothing of the class is queued any more).
    pub fn open_lanes_done(&mut self, lease: &Arc<str>, lane: u64, class: u32) -> bool {
        let Some(c) = self.clusters.get_mut(lease) else {
            return true;
        };
        c.lanes.get(&lane).is_some_and(|l| l.listed) || c.sched.peek_queued(class).is_none()
    }

    /// Puts task `id` into lane `lane`; returns the lane's worker.
    pub fn enqueue_in_lane(
        &mut self,
        lease: &Arc<str>,
        lane: u64,
        id: u64,
    ) -> Option<(Arc<str>, u64)> {
        let l = self.clusters.get_mut(lease)?.lanes.get_mut(&lane)?;
        l.queue.push_back(id);
        Some((l.worker.clone(), l.holder))
    }

    /// Learns a successful run time of task name `name` in lane `lane`'s class.
    pub fn learn_run_time(&mut self, lease: &Arc<str>, lane: u64, name: &str, run_micros: u64) {
        let Some(c) = self.clusters.get_mut(lease) else {
            return;
        };
        let Some(class) = c.lanes.get(&lane).map(|l| l.class) else {
            return;
        };
        let p = c.pipes.entry(class).or_default();
        let x = run_micros as f64;
        match p.mean_us.get_mut(name) {
            Some(m) => *m += (x - *m) / 8.0,
            None => {
                if p.mean_us.len() >= MAX_NAMES_PER_CLASS {
                    p.mean_us.clear();
                }
                p.mean_us.insert(name.to_string(), x);
            }
        }
    }

    /// Task `id`'s result arrived while in lane `lane`. `Some(next)`: `id` held the grant and
    /// `next` (already started on the worker) inherits it; `None`: the caller releases `id`'s
    /// grant (no lane, a task that was still waiting in it, or the lane's last task).
    pub fn lane_pass(&mut self, lease: &Arc<str>, lane: u64, id: u64) -> Option<u64> {
        let c = self.clusters.get_mut(lease)?;
        let l = c.lanes.get_mut(&lane)?;
        if l.holder != id {
            // Ended while still waiting in the lane (cancelled): the holder keeps the grant.
            l.queue.retain(|&q| q != id);
            return None;
        }
        let Some(next) = l.queue.pop_front() else {
            c.lanes.remove(&lane);
            return None;
        };
        l.holder = next;
        Some(next)
    }

    /// `next`, already started behind the holder in lane `lane`, now holds the grant.
    pub fn pass_grant(&mut self, lease: &Arc<str>, next: u64, lane: u64, grant: Option<Grant>) {
        let worker = self
            .clusters
            .get(lease)
            .and_then(|c| c.lanes.get(&lane))
            .map(|l| l.worker.clone());
        match (self.holds.get_mut(&next), worker) {
            (Some(h), _) => h.grant = grant,
            (None, Some(worker)) => {
                self.holds.insert(
                    next,
                    Hold {
                        lease: lease.clone(),
                        worker,
                        grant,
                        lane,
                    },
                );
            }
            // No lane and no hold: nothing runs to hold the grant; give it back.
            (None, None) => {
                if let (Some(g), Some(c)) = (grant, self.clusters.get_mut(lease)) {
                    c.sched.release(&g);
                }
            }
        }
    }

    /// The lane a task runs or waits in (0: none).
    pub fn lane_of(&self, id: u64) -> u64 {
        self.holds.get(&id).map_or(0, |h| h.lane)
    }
}
