//! Live logs of the tasks that stream them (a job's driver): what their workers send while they
//! run, kept in memory per task, read by `KeeperService.Logs` clients from any offset and
//! followed as it grows.
//!
//! Bounded: the last [`MAX_PER_TASK`] bytes of each task and the [`MAX_TASKS`] tasks that
//! logged last. Not persisted: after a keeper restart or past the bounds, a finished task's
//! outputs (stdout and stderr, capped) are what is left, and clients fall back to them.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Bytes of log kept per task (older pieces are dropped first).
pub const MAX_PER_TASK: u64 = 8 << 20;
/// Tasks whose logs are kept (the least recently started go first).
pub const MAX_TASKS: usize = 256;

/// One piece of a task's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Offset of `data` in the task's log.
    pub offset: u64,
    /// 0: stdout, 1: stderr.
    pub stream: u32,
    /// The output.
    pub data: Bytes,
}

#[derive(Default)]
struct TaskLog {
    pieces: VecDeque<Piece>,
    /// Bytes ever appended (the offset of the next piece).
    len: u64,
    /// Bytes held in `pieces`.
    held: u64,
    /// Attempt the last piece came from.
    attempt: u32,
}

/// Every streamed log.
pub struct Logs {
    tasks: Mutex<(HashMap<u64, TaskLog>, VecDeque<u64>)>,
    /// Bumped at every append: followers wake on it.
    changed: watch::Sender<u64>,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            tasks: Mutex::new((HashMap::new(), VecDeque::new())),
            changed: watch::channel(0).0,
        }
    }
}

impl Logs {
    /// Appends output of attempt `attempt` of `task`. A later attempt (a retry) is marked
    /// with a line of its own on stderr.
    pub fn append(&self, task: u64, attempt: u32, stream: u32, data: Bytes) {
        if data.is_empty() {
            return;
        }
        {
            let mut g = self.tasks.lock();
            let (logs, order) = &mut *g;
            if !logs.contains_key(&task) {
                order.push_back(task);
                while order.len() > MAX_TASKS {
                    if let Some(old) = order.pop_front() {
                        logs.remove(&old);
                    }
                }
            }
            let log = logs.entry(task).or_default();
            if log.attempt != 0 && attempt > log.attempt {
                let note = format!("\n[gpunet] attempt {attempt} of task {task}\n");
                push(log, 1, Bytes::from(note));
            }
            log.attempt = log.attempt.max(attempt);
            push(log, stream.min(1), data);
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The pieces of `task`'s log from `offset` on (the first cut to start there; from the
    /// oldest kept when `offset` was dropped already).
    pub fn read(&self, task: u64, offset: u64) -> Vec<Piece> {
        let g = self.tasks.lock();
        let Some(log) = g.0.get(&task) else {
            return Vec::new();
        };
        log.pieces
            .iter()
            .filter(|p| p.offset + p.data.len() as u64 > offset)
            .map(|p| {
                let skip = offset.saturating_sub(p.offset) as usize;
                Piece {
                    offset: p.offset + skip as u64,
                    stream: p.stream,
                    data: p.data.slice(skip..),
                }
            })
            .collect()
    }

    /// Whether `task` has a log here.
    pub fn has(&self, task: u64) -> bool {
        self.tasks.lock().0.contains_key(&task)
    }

    /// Wakes when any log grows.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

fn push(log: &mut TaskLog, stream: u32, data: Bytes) {
    let n = data.len() as u64;
    log.pieces.push_back(Piece {
        offset: log.len,
        stream,
        data,
    });
    log.len += n;
    log.held += n;
    while log.held > MAX_PER_TASK && log.pieces.len() > 1 {
        if let Some(p) = log.pieces.pop_front() {
            log.held -= p.data.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_from_any_offset_marks_retries_and_stays_bounded() {
        let logs = Logs::default();
        logs.append(7, 1, 0, Bytes::from_static(b"hello "));
        logs.append(7, 1, 1, Bytes::from_static(b"warn\n"));
        let all = logs.read(7, 0);
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].offset, all[1].stream), (6, 1));
        let tail = logs.read(7, 8);
        assert_eq!(tail[0].data, Bytes::from_static(b"rn\n"));
        assert!(logs.read(7, 11).is_empty());
        logs.append(7, 2, 0, Bytes::from_static(b"again"));
        let after = logs.read(7, 11);
        assert!(String::from_utf8_lossy(&after[0].data).contains("attempt 2"));
        assert_eq!(after[1].data, Bytes::from_static(b"again"));
        // Bounded per task: the oldest pieces go, offsets stay.
        let big = Bytes::from(vec![b'x'; (MAX_PER_TASK / 2 + 1) as usize]);
        for _ in 0..3 {
            logs.append(8, 1, 0, big.clone());
        }
        let kept = logs.read(8, 0);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].offset, 2 * big.len() as u64);
        // Bounded in tasks: the first ones go.
        for t in 100..100 + MAX_TASKS as u64 {
            logs.append(t, 1, 0, Bytes::from_static(b"."));
        }
        assert!(!logs.has(7) && logs.has(100));
    }
}
