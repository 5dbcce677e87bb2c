//! Persistence: an append-only write-ahead log in front of redb.
//!
//! Why redb: pure Rust (no C toolchain, no system library, builds with the workspace's one
//! toolchain), ACID with copy-on-write B-trees and checksummed commits, one file, a stable 3.x
//! format. It holds the keeper's state between restarts.
//!
//! Why a log in front of it (hand-rolled, ~150 lines): a redb commit costs tens of
//! microseconds of CPU plus a hop to the thread that owns the write transaction, and redb has
//! no commit mode that survives a process crash without an `fsync` (its `Durability::None`
//! commits live in redb's own buffers until the next durable one). A synchronous task's round
//! trip is ~0.2 ms in total, so the keeper appends each change to a log file with one
//! `write(2)` instead, on the caller's thread, and redb is brought up to date in the background:
//!
//! - **Hot path** ([`Store::send`], called under the core lock): encode the batch, append one
//!   checksummed frame to the current log segment. What happens next is the
//!   [`Durability`] setting:
//!   - `immediate`: the batch is acknowledged after `fdatasync` of the segment. A syncer thread
//!     takes every batch queued meanwhile and makes them durable with one call (group commit).
//!     Survives SIGKILL and power loss.
//!   - `process`: acknowledged as soon as `write(2)` returns — the bytes are in the kernel's page
//!     cache, which a killed process cannot lose. The syncer `fdatasync`s every
//!     `sync_interval` (default 10 ms), which bounds what an OS crash or power loss can take.
//!   - `none`: no log at all; redb's checkpoints only (what a crash loses is unbounded by
//!     design: for benchmarks that want the cost of durability measured).
//! - **Checkpointer** thread: applies the same batches to redb (non-durable commits), and every
//!   `checkpoint_interval` (default 1 s) rotates the log to a new segment, commits redb durably
//!   and deletes the segments it now contains. The log therefore stays about one interval long.
//! - **Restart**: redb's last durable commit, then every segment replayed in order (records are
//!   whole-row upserts and deletes, so replaying rows redb already has is harmless); a torn or
//!   corrupt frame ends the replay there (it was never acknowledged: an acknowledged frame was
//!   written whole). The result is committed durably and the segments deleted before serving.
//!
//! Tables: `tasks` (id → [`TaskRecord`], the task's spec, state and output locations — the
//! object metadata), `evidence` (sequence → [`Evidence`]: worker deaths and proof verdicts for
//! the chain side), `clusters` (lease → [`ClusterRecord`]), `groups` (lease/id →
//! [`GroupRecord`], the placement groups), `checkpoints` (lease/sequence → [`CheckpointRecord`]:
//! what the chain side posted, with the proofs' transcripts, served for audits).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::config::Durability;
use crate::error::KeeperError;

mod records;
mod wal;

pub use records::{
    CheckpointRecord, ClusterRecord, Evidence, EvidenceKind, GroupRecord, OutputRecord, TaskRecord,
};
use wal::{
    Row, Segment, WalBatch, create_segment, frame, read_segment, segment_path, segments, wal_dir,
};

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const EVIDENCE: TableDefinition<u64, &[u8]> = TableDefinition::new("evidence");
const CLUSTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("clusters");
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");

/// Largest number of batches folded into one sync or one redb transaction.
const MAX_GROUP: usize = 4096;
/// Rotate the log early when a segment grows past this many bytes.
const SEGMENT_BYTES: u64 = 256 << 20;
/// Work for one append.
#[derive(Default)]
pub struct Batch {
    /// Task records to write (later ones for the same id win).
    pub tasks: Vec<TaskRecord>,
    /// Evidence to append.
    pub evidence: Vec<Evidence>,
    /// Cluster states to write.
    pub clusters: Vec<(String, ClusterRecord)>,
    /// Placement groups to write.
    pub groups: Vec<GroupRecord>,
    /// Task records to delete (after the task records above).
    pub deleted: Vec<u64>,
    /// Checkpoints to write (the chain side's, before it sends them).
    pub checkpoints: Vec<CheckpointRecord>,
    /// Completed when the batch is durable (true) or failed (false).
    pub ack: Option<oneshot::Sender<bool>>,
    /// Task ids to make visible once durable (terminal states).
    pub visible: Vec<u64>,
}

impl Batch {
    /// True when there is nothing to write or acknowledge.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.evidence.is_empty()
            && self.clusters.is_empty()
            && self.groups.is_empty()
            && self.deleted.is_empty()
            && self.checkpoints.is_empty()
            && self.ack.is_none()
            && self.visible.is_empty()
    }
}

/// Called on the syncer thread after an `fsync` with the `visible` ids of the batches it made
/// durable (`immediate` durability only; otherwise [`Store::send`] returns them).
pub type CommitSink = Box<dyn Fn(Vec<u64>) + Send>;

/// What [`Store::send`] did with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Durable already (to the configured level): the caller makes these ids visible now.
    Durable(Vec<u64>),
    /// Queued for `fsync`: the commit sink makes its ids visible later.
    Pending,
    /// The store has shut down or could not write: nothing was acknowledged.
    Refused,
}

/// What a restart finds.
pub struct Loaded {
    /// Every task record.
    pub tasks: Vec<TaskRecord>,
    /// Every placement group, in id order within a lease.
    pub groups: Vec<GroupRecord>,
    /// Next evidence sequence number.
    pub next_evidence: u64,
    /// Every checkpoint record, in lease and sequence order.
    pub checkpoints: Vec<CheckpointRecord>,
}

/// Where and how to persist.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// redb file; empty = in memory (nothing survives a restart, nothing is written).
    pub path: String,
    /// What an acknowledgement means.
    pub durability: Durability,
    /// `process` durability: how often the log is `fdatasync`ed.
    pub sync_interval: Duration,
    /// How often redb is committed durably and the log truncated.
    pub checkpoint_interval: Duration,
}

impl StoreOptions {
    /// In memory, for tests.
    pub fn in_memory() -> Self {
        Self {
            path: String::new(),
            durability: Durability::Immediate,
            sync_interval: Duration::from_millis(10),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// The appending side, behind one mutex: frame order = sequence order = checkpoint order.
struct Writer {
    dir: Option<PathBuf>,
    segment: Option<Segment>,
    next_seq: u64,
    next_evidence: u64,
    dirty: bool,
    buf: Vec<u8>,
    /// Batches not yet applied to redb (taken by the checkpointer; no wake-up per batch).
    pending: Vec<WalBatch>,
    /// Whether a checkpointer runs (on-disk database).
    checkpointing: bool,
    /// The next segment, created ahead of time so that rotating is a swap under the lock.
    spare: Option<Segment>,
    sync: Option<mpsc::Sender<SyncReq>>,
    closed: bool,
}

struct SyncReq {
    file: Arc<File>,
    ack: Option<oneshot::Sender<bool>>,
    visible: Vec<u64>,
}

/// Handle to the log and its two threads.
pub struct Store {
    w: Arc<Mutex<Writer>>,
    /// Wakes the checkpointer at shutdown.
    cv: Arc<Condvar>,
    durability: Durability,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn open_db(path: &str) -> Result<Database, KeeperError> {
    if path.is_empty() {
        Ok(Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?)
    } else {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Database::create(path)?)
    }
}

/// Apply batches to redb in one transaction.
fn apply(
    db: &Database,
    batches: &[WalBatch],
    durability: redb::Durability,
) -> Result<(), KeeperError> {
    let mut w = db.begin_write()?;
    w.set_durability(durability)?;
    {
        let mut t = w.open_table(TASKS)?;
        let mut e = w.open_table(EVIDENCE)?;
        let mut c = w.open_table(CLUSTERS)?;
        let mut g = w.open_table(GROUPS)?;
        let mut k = w.open_table(CHECKPOINTS)?;
        // Only the last write of each task counts (under load a task's acceptance and its
        // terminal record often land in the same group); write them in key order.
        let mut last: std::collections::BTreeMap<u64, Option<&[u8]>> = Default::default();
        for b in batches {
            for r in &b.tasks {
                last.insert(r.num, Some(r.value.as_slice()));
            }
            for id in &b.deleted {
                last.insert(*id, None);
            }
        }
        for (id, v) in last {
            match v {
                Some(v) => {
                    t.insert(id, v)?;
                }
                None => {
                    t.remove(id)?;
                }
            }
        }
        for b in batches {
            for r in &b.evidence {
                e.insert(r.num, r.value.as_slice())?;
            }
            for r in &b.clusters {
                c.insert(r.key.as_str(), r.value.as_slice())?;
            }
            for r in &b.groups {
                g.insert(r.key.as_str(), r.value.as_slice())?;
            }
            for r in &b.checkpoints {
                k.insert(r.key.as_str(), r.value.as_slice())?;
            }
        }
    }
    w.commit()?;
    Ok(())
}

/// Replay the log into redb (durably) and delete it. Returns the number of batches replayed.
fn recover_log(db: &Database, dir: &Path) -> Result<usize, KeeperError> {
    let segs = segments(dir)?;
    let mut batches: Vec<WalBatch> = Vec::new();
    let mut damaged_from = None;
    // Trailing empty segments (the pre-created spare) do not make a torn tail "damage".
    let last_used = segs
        .iter()
        .rposition(|&n| std::fs::metadata(segment_path(dir, n)).is_ok_and(|m| m.len() > 0))
        .unwrap_or(0);
    for (i, &n) in segs.iter().enumerate() {
        let (b, mut clean) = read_segment(&segment_path(dir, n))?;
        let mut gap = false;
        // Batches are numbered consecutively from the store's start: a gap means a segment
        // is missing, and replaying past it would apply older rows over newer ones.
        for x in b {
            if let Some(prev) = batches.last()
                && x.seq != prev.seq + 1
            {
                warn!(
                    segment = n,
                    expected = prev.seq + 1,
                    got = x.seq,
                    "gap in the log"
                );
                clean = false;
                gap = true;
                break;
            }
            batches.push(x);
        }
        if !clean {
            if gap || i < last_used {
                // Not what a crash leaves (only the last segment can end mid-frame): keep the
                // damaged and later segments aside for inspection.
                warn!(
                    segment = n,
                    later = segs.len() - i - 1,
                    "log segment damaged before its end; it and later segments are set aside as *.damaged"
                );
                damaged_from = Some(i);
            } else {
                info!(
                    segment = n,
                    "log ends in a partial frame (never acknowledged)"
                );
            }
            break;
        }
    }
    apply(db, &batches, redb::Durability::Immediate)?;
    for (i, n) in segs.into_iter().enumerate() {
        let p = segment_path(dir, n);
        if damaged_from.is_some_and(|d| i >= d) {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            std::fs::rename(&p, p.with_extension(format!("log.{stamp}.damaged")))?;
        } else {
            std::fs::remove_file(p)?;
        }
    }
    Ok(batches.len())
}

fn load(db: &Database) -> Result<Loaded, KeeperError> {
    let r = db.begin_read()?;
    let t = r.open_table(TASKS)?;
    let mut tasks = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        let rec = <TaskRecord as prost::Message>::decode(v.value())
            .map_err(|e| KeeperError::Db(format!("corrupt task record: {e}")))?;
        tasks.push(rec);
    }
    let g = r.open_table(GROUPS)?;
    let mut groups = Vec::new();
    for row in g.iter()? {
        let (_, v) = row?;
        groups.push(
            <GroupRecord as prost::Message>::decode(v.value())
                .map_err(|e| KeeperError::Db(format!("corrupt placement group: {e}")))?,
        );
    }
    groups.sort_by(|a, b| (&a.lease, a.id).cmp(&(&b.lease, b.id)));
    let e = r.open_table(EVIDENCE)?;
    let next_evidence = e.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
    let k = r.open_table(CHECKPOINTS)?;
    let mut checkpoints = Vec::new();
    for row in k.iter()? {
        let (_, v) = row?;
        checkpoints.push(
            <CheckpointRecord as prost::Message>::decode(v.value())
                .map_err(|e| KeeperError::Db(format!("corrupt checkpoint record: {e}")))?,
        );
    }
    Ok(Loaded {
        tasks,
        groups,
        next_evidence,
        checkpoints,
    })
}

fn open_and_recover(path: &str) -> Result<(Database, Loaded), KeeperError> {
    let db = open_db(path)?;
    let w = db.begin_write()?;
    {
        w.open_table(TASKS)?;
        w.open_table(EVIDENCE)?;
        w.open_table(CLUSTERS)?;
        w.open_table(GROUPS)?;
        w.open_table(CHECKPOINTS)?;
    }
    w.commit()?;
    if !path.is_empty() {
        let n = recover_log(&db, &wal_dir(path))?;
        if n > 0 {
            info!(batches = n, "replayed the write-ahead log");
        }
    }
    let loaded = load(&db)?;
    Ok((db, loaded))
}

impl Store {
    /// Open (or create) the database, replay the log, load the state, start the threads.
    pub fn open(
        opts: &StoreOptions,
        sink_slot: Arc<Mutex<Option<CommitSink>>>,
    ) -> Result<(Store, Loaded), KeeperError> {
        let (db, loaded) = open_and_recover(&opts.path)?;
        let on_disk = !opts.path.is_empty();
        let logged = on_disk && opts.durability != Durability::None;
        let dir = logged.then(|| wal_dir(&opts.path));
        let segment = match &dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                Some(create_segment(d, 0)?)
            }
            None => None,
        };
        let (sync_tx, sync_rx) = mpsc::channel::<SyncReq>();
        let w = Arc::new(Mutex::new(Writer {
            dir,
            segment,
            next_seq: 0,
            next_evidence: loaded.next_evidence,
            dirty: false,
            buf: Vec::with_capacity(4096),
            pending: Vec::new(),
            checkpointing: on_disk,
            spare: None,
            sync: logged.then_some(sync_tx),
            closed: false,
        }));
        let mut threads = Vec::new();
        let cv = Arc::new(Condvar::new());
        if on_disk {
            let w2 = w.clone();
            let cv2 = cv.clone();
            let every = opts.checkpoint_interval;
            threads.push(
                std::thread::Builder::new()
                    .name("gpunet-checkpoint".into())
                    .spawn(move || checkpointer(db, w2, cv2, every))?,
            );
        }
        if logged {
            let w2 = w.clone();
            let every = opts.sync_interval;
            let periodic = opts.durability == Durability::Process;
            threads.push(
                std::thread::Builder::new()
                    .name("gpunet-sync".into())
                    .spawn(move || syncer(w2, sync_rx, every, periodic, sink_slot))?,
            );
        }
        Ok((
            Store {
                w,
                cv,
                durability: opts.durability,
                threads: Mutex::new(threads),
            },
            loaded,
        ))
    }

    /// Append a batch. Cheap (one `write(2)` at most); never waits for the disk.
    pub fn send(&self, b: Batch) -> Sent {
        let mut g = self.w.lock();
        let w = &mut *g;
        if w.closed {
            return Sent::Refused;
        }
        let seq = w.next_seq;
        let rows = Rows {
            tasks: b.tasks,
            evidence: b.evidence,
            clusters: b.clusters,
            groups: b.groups,
            deleted: b.deleted,
            checkpoints: b.checkpoints,
        };
        let body = match encode(rows, seq, w) {
            Ok(body) => body,
            Err(e) => {
                error!(error = %e, "could not encode a batch");
                return Sent::Refused;
            }
        };
        let has_rows = body.has_rows();
        let mut file = None;
        if has_rows && let Some(seg) = w.segment.as_mut() {
            if !frame(&mut w.buf, &body) {
                error!(
                    "a batch is larger than a log frame can hold; the keeper stops accepting work"
                );
                w.closed = true;
                return Sent::Refused;
            }
            if let Err(e) = (&*seg.file).write_all(&w.buf) {
                // Nothing after a failed append can be trusted to be in order: stop accepting.
                error!(error = %e, "write-ahead log append failed; the keeper stops accepting work");
                w.closed = true;
                return Sent::Refused;
            }
            seg.bytes += w.buf.len() as u64;
            w.dirty = true;
            file = Some(seg.file.clone());
        }
        if has_rows {
            w.next_seq += 1;
            if w.checkpointing {
                w.pending.push(body);
            }
        }
        match (self.durability, file, &w.sync) {
            (Durability::Immediate, Some(file), Some(tx)) => {
                let req = SyncReq {
                    file,
                    ack: b.ack,
                    visible: b.visible,
                };
                if tx.send(req).is_err() {
                    error!("the log's syncer thread is gone; the keeper stops accepting work");
                    w.closed = true;
                    return Sent::Refused;
                }
                Sent::Pending
            }
            // Nothing written (only waiting on earlier batches) under `immediate`: order it
            // behind them with an empty sync request.
            (Durability::Immediate, None, Some(tx)) => {
                let Some(seg) = w.segment.as_ref() else {
                    return Sent::Refused;
                };
                let req = SyncReq {
                    file: seg.file.clone(),
                    ack: b.ack,
                    visible: b.visible,
                };
                if tx.send(req).is_err() {
                    error!("the log's syncer thread is gone; the keeper stops accepting work");
                    w.closed = true;
                    return Sent::Refused;
                }
                Sent::Pending
            }
            _ => {
                if let Some(a) = b.ack {
                    let _ = a.send(true);
                }
                Sent::Durable(b.visible)
            }
        }
    }

    /// True once the store refuses work (shut down, or a write or sync failed).
    pub fn is_closed(&self) -> bool {
        self.w.lock().closed
    }

    /// Stop accepting, make everything durable, checkpoint into redb, stop the threads.
    pub fn shutdown(&self) {
        {
            let mut w = self.w.lock();
            w.closed = true;
            w.checkpointing = false;
            w.sync.take();
        }
        self.cv.notify_all();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

/// The rows of one batch, to encode.
struct Rows {
    tasks: Vec<TaskRecord>,
    evidence: Vec<Evidence>,
    clusters: Vec<(String, ClusterRecord)>,
    groups: Vec<GroupRecord>,
    deleted: Vec<u64>,
    checkpoints: Vec<CheckpointRecord>,
}

fn encode(rows: Rows, seq: u64, w: &mut Writer) -> Result<WalBatch, KeeperError> {
    let Rows {
        tasks,
        evidence,
        clusters,
        groups,
        deleted,
        checkpoints,
    } = rows;
    let mut body = WalBatch {
        seq,
        deleted,
        ..Default::default()
    };
    for rec in &tasks {
        body.tasks.push(Row {
            num: rec.id,
            key: String::new(),
            value: prost::Message::encode_to_vec(rec),
        });
    }
    for ev in &evidence {
        body.evidence.push(Row {
            num: w.next_evidence,
            key: String::new(),
            value: prost::Message::encode_to_vec(ev),
        });
        w.next_evidence += 1;
    }
    for (lease, rec) in &clusters {
        body.clusters.push(Row {
            num: 0,
            key: lease.clone(),
            value: prost::Message::encode_to_vec(rec),
        });
    }
    for rec in &groups {
        body.groups.push(Row {
            num: rec.id,
            key: format!("{}/{:020}", rec.lease, rec.id),
            value: prost::Message::encode_to_vec(rec),
        });
    }
    for rec in &checkpoints {
        body.checkpoints.push(Row {
            num: rec.sequence,
            key: format!("{}/{:020}", rec.lease_id, rec.sequence),
            value: prost::Message::encode_to_vec(rec),
        });
    }
    Ok(body)
}

/// `immediate`: fsync for every group of queued requests, then acknowledge them.
/// `process`: fsync the current segment every `every` if it was written to.
fn syncer(
    w: Arc<Mutex<Writer>>,
    rx: mpsc::Receiver<SyncReq>,
    every: Duration,
    periodic: bool,
    sink_slot: Arc<Mutex<Option<CommitSink>>>,
) {
    let every = if periodic {
        every.max(Duration::from_millis(1))
    } else {
        Duration::from_secs(3600)
    };
    loop {
        let first = match rx.recv_timeout(every) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group: Vec<SyncReq> = first.into_iter().collect();
        while !group.is_empty() && group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        if group.is_empty() {
            if !periodic {
                continue;
            }
            // Periodic sync (`process` durability).
            let file = {
                let mut g = w.lock();
                if !g.dirty {
                    continue;
                }
                g.dirty = false;
                g.segment.as_ref().map(|s| s.file.clone())
            };
            if let Some(f) = file
                && let Err(e) = f.sync_data()
            {
                // After a failed fsync the kernel may have dropped the dirty pages: nothing
                // written since can be trusted to be on disk. Stop; a restart replays the log.
                error!(error = %e, "fdatasync of the write-ahead log failed; the keeper stops accepting work");
                w.lock().closed = true;
            }
            continue;
        }
        let mut ok = true;
        let mut synced: Vec<&Arc<File>> = Vec::new();
        for r in &group {
            if synced.iter().any(|f| Arc::ptr_eq(f, &r.file)) {
                continue;
            }
            if let Err(e) = r.file.sync_data() {
                error!(error = %e, "fdatasync of the write-ahead log failed; the keeper stops accepting work");
                w.lock().closed = true;
                ok = false;
            }
            synced.push(&r.file);
        }
        let mut visible = Vec::new();
        for r in group {
            if let Some(a) = r.ack {
                let _ = a.send(ok);
            }
            visible.extend(r.visible);
        }
        if ok
            && !visible.is_empty()
            && let Some(sink) = sink_slot.lock().as_ref()
        {
            sink(visible);
        }
    }
    // Final sync on shutdown.
    let file = w.lock().segment.as_ref().map(|s| s.file.clone());
    if let Some(f) = file {
        let _ = f.sync_data();
    }
}

/// Keep redb up to date with the log; checkpoint and truncate the log `every` after the first
/// change not yet checkpointed. Polls the pending batches a few times per interval instead of
/// being woken for each (a wake-up per batch cost ~10% of the keeper's CPU under load).
fn checkpointer(db: Database, w: Arc<Mutex<Writer>>, cv: Arc<Condvar>, every: Duration) {
    let tick = (every / 4).clamp(Duration::from_millis(5), Duration::from_millis(50));
    let mut dirty_since: Option<Instant> = None;
    let mut retry: Vec<WalBatch> = Vec::new();
    loop {
        // Keep a spare segment ready (file creation and the directory fsync stay off the lock).
        let need_spare = {
            let g = w.lock();
            g.spare.is_none() && g.segment.is_some() && !g.closed
        };
        if need_spare {
            let (dir, next) = {
                let g = w.lock();
                (g.dir.clone(), g.segment.as_ref().map(|s| s.number + 1))
            };
            if let (Some(dir), Some(next)) = (dir, next) {
                match create_segment(&dir, next) {
                    Ok(seg) => w.lock().spare = Some(seg),
                    Err(e) => error!(error = %e, "could not create the next log segment"),
                }
            }
        }
        let mut g = w.lock();
        if !g.closed {
            cv.wait_for(&mut g, tick);
        }
        let closed = g.closed;
        // Batches whose apply failed come first: they are not in redb yet, and their segments
        // are only deleted after a durable commit that includes them.
        let mut group = std::mem::take(&mut retry);
        group.append(&mut g.pending);
        if !group.is_empty() && dirty_since.is_none() {
            dirty_since = Some(Instant::now());
        }
        let due = closed
            || dirty_since.is_some_and(|t| t.elapsed() >= every)
            || g.segment.as_ref().is_some_and(|s| s.bytes > SEGMENT_BYTES);
        if !due {
            drop(g);
            if !group.is_empty()
                && let Err(e) = apply(&db, &group, redb::Durability::None)
            {
                error!(error = %e, "applying the log to redb failed; the log is kept, retrying");
                retry = group;
            }
            continue;
        }
        // Checkpoint: swap in the spare segment; every batch in the older segments is in
        // `group` or was applied before; commit redb durably; delete those segments.
        let mut retire_below = None;
        let mut old = None;
        if closed {
            retire_below = g.dir.clone().map(|d| (d, u64::MAX));
        } else if let Some(spare) = g.spare.take() {
            let n = spare.number;
            old = g.segment.replace(spare);
            retire_below = g.dir.clone().map(|d| (d, n));
        }
        drop(g);
        if let Some(old) = old
            && let Err(e) = old.file.sync_data()
        {
            error!(error = %e, "fdatasync of the write-ahead log failed");
        }
        if let Err(e) = apply(&db, &group, redb::Durability::Immediate) {
            // The log still has everything: a restart replays it.
            error!(error = %e, "checkpoint into redb failed; the log is kept, retrying");
            if closed {
                return;
            }
            retry = group;
            continue;
        }
        dirty_since = None;
        if let Some((dir, below)) = retire_below {
            match segments(&dir) {
                Ok(segs) => {
                    // In order, stopping at the first failure: what is left must stay a
                    // contiguous suffix of the log, or a replay would apply old rows last.
                    for n in segs.into_iter().filter(|n| *n < below) {
                        if let Err(e) = std::fs::remove_file(segment_path(&dir, n)) {
                            warn!(error = %e, segment = n, "could not delete a log segment");
                            break;
                        }
                    }
                }
                Err(e) => warn!(error = %e, "could not list log segments"),
            }
        }
        if closed {
            return;
        }
    }
}

/// Read all evidence records (for inspection and tests), replaying the log first. The keeper
/// must not be running on this file.
pub fn read_evidence(path: &str) -> Result<Vec<Evidence>, KeeperError> {
    let (db, _) = open_and_recover(path)?;
    let r = db.begin_read()?;
    let t = r.open_table(EVIDENCE)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(
            <Evidence as prost::Message>::decode(v.value())
                .map_err(|e| KeeperError::Db(e.to_string()))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpunet_proto::v1 as pb;

    fn opts(dir: &Path, durability: Durability, checkpoint: Duration) -> StoreOptions {
        StoreOptions {
            path: dir.join("k.redb").to_string_lossy().into_owned(),
            durability,
            sync_interval: Duration::from_millis(5),
            checkpoint_interval: checkpoint,
        }
    }

    fn task(id: u64, state: pb::TaskState) -> TaskRecord {
        TaskRecord {
            id,
            lease: "l".into(),
            state: state as i32,
            ..Default::default()
        }
    }

    fn sink() -> Arc<Mutex<Option<CommitSink>>> {
        Arc::new(Mutex::new(None))
    }

    /// Copy the database and its log as they are now: what a SIGKILL at this instant leaves
    /// (the kernel's view of the files; nothing the process buffered itself).
    fn snapshot(from: &Path, to: &Path) {
        std::fs::copy(from.join("k.redb"), to.join("k.redb")).unwrap();
        let wal = to.join("k.redb.wal");
        std::fs::create_dir_all(&wal).unwrap();
        for e in std::fs::read_dir(from.join("k.redb.wal")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), wal.join(e.file_name())).unwrap();
        }
    }

    fn ids(l: &Loaded) -> Vec<(u64, i32)> {
        let mut v: Vec<(u64, i32)> = l.tasks.iter().map(|t| (t.id, t.state)).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn test_process_durability_acknowledges_at_once_and_survives_a_kill() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        // No checkpoint during the test: everything must come back from the log.
        let o = opts(a.path(), Durability::Process, Duration::from_secs(3600));
        let (store, loaded) = Store::open(&o, sink()).unwrap();
        assert!(loaded.tasks.is_empty());
        for i in 1..=50 {
            let (tx, mut rx) = oneshot::channel();
            let sent = store.send(Batch {
                tasks: vec![task(i, pb::TaskState::Queued)],
                ack: Some(tx),
                visible: vec![i],
                ..Default::default()
            });
            assert_eq!(sent, Sent::Durable(vec![i]));
            assert_eq!(rx.try_recv(), Ok(true), "acknowledged without waiting");
        }
        store.send(Batch {
            tasks: vec![task(7, pb::TaskState::Finished)],
            deleted: vec![9],
            evidence: vec![Evidence {
                worker: "w".into(),
                ..Default::default()
            }],
            groups: vec![GroupRecord {
                lease: "l".into(),
                id: 3,
                bundles: vec![pb::Resources {
                    gpus: 1,
                    ..Default::default()
                }],
                strategy: pb::PlacementStrategy::StrictSpread as i32,
                removed: false,
            }],
            checkpoints: vec![CheckpointRecord {
                lease_id: "l".into(),
                sequence: 2,
                pass: true,
                digest: vec![9; 32].into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        snapshot(a.path(), b.path());
        let (again, loaded) = Store::open(
            &opts(b.path(), Durability::Process, Duration::from_secs(1)),
            sink(),
        )
        .unwrap();
        let got = ids(&loaded);
        assert_eq!(got.len(), 49, "task 9 was deleted");
        assert!(got.contains(&(7, pb::TaskState::Finished as i32)));
        assert!(!got.iter().any(|(id, _)| *id == 9));
        assert_eq!(loaded.next_evidence, 1);
        assert_eq!(loaded.groups.len(), 1);
        assert_eq!(loaded.groups[0].id, 3);
        assert_eq!(loaded.groups[0].bundles[0].gpus, 1);
        assert_eq!(loaded.checkpoints.len(), 1);
        assert_eq!(
            (
                loaded.checkpoints[0].lease_id.as_str(),
                loaded.checkpoints[0].sequence
            ),
            ("l", 2)
        );
        assert_eq!(&loaded.checkpoints[0].digest[..], &[9; 32]);
        // The replay was checkpointed and the old log deleted: only the fresh segment (and
        // perhaps its spare) is left.
        let segs = segments(&b.path().join("k.redb.wal")).unwrap();
        assert!(segs == [0] || segs == [0, 1], "{segs:?}");
        again.shutdown();
        store.shutdown();
    }

    #[test]
    fn test_immediate_durability_acknowledges_after_fsync_through_the_sink() {
        let a = tempfile::tempdir().unwrap();
        let slot = sink();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        *slot.lock() = Some(Box::new(move |ids| s2.lock().extend(ids)));
        let o = opts(a.path(), Durability::Immediate, Duration::from_secs(1));
        let (store, _) = Store::open(&o, slot).unwrap();
        let (tx, rx) = oneshot::channel();
        let sent = store.send(Batch {
            tasks: vec![task(1, pb::TaskState::Finished)],
            ack: Some(tx),
            visible: vec![1],
            ..Default::default()
        });
        assert_eq!(sent, Sent::Pending);
        assert_eq!(rx.blocking_recv(), Ok(true));
        // The sink runs on the syncer thread right after the acknowledgements.
        let t = Instant::now();
        while seen.lock().is_empty() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(*seen.lock(), vec![1]);
        store.shutdown();
        // After a clean shutdown everything is in redb and the log is gone.
        assert!(segments(&a.path().join("k.redb.wal")).unwrap().is_empty());
        let (store, loaded) = Store::open(&o, sink()).unwrap();
        assert_eq!(ids(&loaded), vec![(1, pb::TaskState::Finished as i32)]);
        store.shutdown();
        assert_eq!(store.send(Batch::default()), Sent::Refused);
    }

    #[test]
    fn test_checkpoints_truncate_the_log_and_keep_everything() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let o = opts(a.path(), Durability::Process, Duration::from_millis(20));
        let (store, _) = Store::open(&o, sink()).unwrap();
        for i in 1..=300u64 {
            store.send(Batch {
                tasks: vec![task(i, pb::TaskState::Finished)],
                ..Default::default()
            });
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(30));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let segs = segments(&a.path().join("k.redb.wal")).unwrap();
        assert!(
            segs.len() <= 2,
            "old segments deleted (current + spare left): {segs:?}"
        );
        assert!(segs[0] >= 3, "the log rotated at checkpoints: {segs:?}");
        snapshot(a.path(), b.path());
        let (again, loaded) = Store::open(
            &opts(b.path(), Durability::Process, o.checkpoint_interval),
            sink(),
        )
        .unwrap();
        assert_eq!(loaded.tasks.len(), 300);
        again.shutdown();
        store.shutdown();
    }

    #[test]
    fn test_torn_tail_is_ignored_and_damaged_segments_are_set_aside() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let o = opts(a.path(), Durability::Process, Duration::from_secs(3600));
        let (store, _) = Store::open(&o, sink()).unwrap();
        for i in 1..=3 {
            store.send(Batch {
                tasks: vec![task(i, pb::TaskState::Queued)],
                ..Default::default()
            });
        }
        snapshot(a.path(), b.path());
        store.shutdown();
        let wal = b.path().join("k.redb.wal");
        // A torn last frame: a header that promises more bytes than follow.
        let seg0 = segment_path(&wal, 0);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&seg0)
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(f);
        let ob = opts(b.path(), Durability::Process, Duration::from_secs(3600));
        let (s2, loaded) = Store::open(&ob, sink()).unwrap();
        assert_eq!(
            loaded.tasks.len(),
            3,
            "complete frames replayed, torn one ignored"
        );
        s2.send(Batch {
            tasks: vec![task(4, pb::TaskState::Queued)],
            ..Default::default()
        });
        let c = tempfile::tempdir().unwrap();
        snapshot(b.path(), c.path());
        s2.shutdown();
        // Corrupt a byte in the middle of a non-last segment: it and later ones are set aside.
        let wal = c.path().join("k.redb.wal");
        let mut bytes = std::fs::read(segment_path(&wal, 0)).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(segment_path(&wal, 0), &bytes).unwrap();
        std::fs::write(segment_path(&wal, 1), b"later").unwrap();
        let oc = opts(c.path(), Durability::Process, Duration::from_secs(3600));
        let (s3, loaded) = Store::open(&oc, sink()).unwrap();
        assert_eq!(loaded.tasks.len(), 3, "task 4's frame was corrupted");
        let aside: Vec<String> = std::fs::read_dir(&wal)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".damaged"))
            .collect();
        assert!(
            aside.iter().any(|n| n.starts_with("0000000000000000.log.")),
            "{aside:?}"
        );
        assert!(
            aside.iter().any(|n| n.starts_with("0000000000000001.log.")),
            "{aside:?}"
        );
        s3.shutdown();
    }

    #[test]
    fn test_a_missing_segment_stops_the_replay_at_the_gap() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        // A store that rotates often (its log must be gone after a clean shutdown).
        let o = opts(a.path(), Durability::Process, Duration::from_millis(5));
        let (store, _) = Store::open(&o, sink()).unwrap();
        for i in 1..=6u64 {
            store.send(Batch {
                tasks: vec![task(i, pb::TaskState::Queued)],
                ..Default::default()
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        let wal_a = a.path().join("k.redb.wal");
        let wal_b = b.path().join("k.redb.wal");
        std::fs::create_dir_all(&wal_b).unwrap();
        // Hand-made log: batches 0..3 in segment 0, batch 5 in segment 2 (segment 1 lost).
        // One frame holding task `100 + seq` as batch `seq`.
        let framed = |seq: u64| {
            let id = seq + 100;
            let body = WalBatch {
                seq,
                tasks: vec![Row {
                    num: id,
                    key: String::new(),
                    value: prost::Message::encode_to_vec(&task(id, pb::TaskState::Queued)),
                }],
                ..Default::default()
            };
            let mut buf = Vec::new();
            assert!(frame(&mut buf, &body));
            buf
        };
        let seg0: Vec<u8> = (0..3u64).flat_map(framed).collect();
        std::fs::write(segment_path(&wal_b, 0), &seg0).unwrap();
        std::fs::write(segment_path(&wal_b, 2), framed(5)).unwrap();
        let (s2, loaded) = Store::open(
            &opts(b.path(), Durability::Process, o.checkpoint_interval),
            sink(),
        )
        .unwrap();
        assert_eq!(
            ids(&loaded).iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );
        s2.shutdown();
        store.shutdown();
        assert!(
            segments(&wal_a).unwrap().is_empty(),
            "clean shutdown empties the log"
        );
    }

    #[test]
    fn test_in_memory_store_acknowledges_and_keeps_nothing() {
        let (store, loaded) = Store::open(&StoreOptions::in_memory(), sink()).unwrap();
        assert!(loaded.tasks.is_empty());
        let sent = store.send(Batch {
            tasks: vec![task(1, pb::TaskState::Finished)],
            visible: vec![1],
            ..Default::default()
        });
        assert_eq!(sent, Sent::Durable(vec![1]));
        store.shutdown();
    }
}
