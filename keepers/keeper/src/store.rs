//! Persistence: redb with a group-commit thread.
//!
//! Why redb: pure Rust (no C toolchain, no system library, builds with the workspace's one
//! toolchain), ACID with copy-on-write B-trees and checksummed commits, so a SIGKILL at any
//! moment leaves the last committed transaction intact; one file; a stable 3.x format. The
//! keeper's write pattern — many small records, one writer — fits it.
//!
//! Hot path: no caller waits for its own fsync. Callers enqueue [`Batch`]es; the store thread
//! takes everything queued, writes it in **one** transaction and commits once (one fsync with
//! [`Durability::Immediate`]), then acknowledges every batch in it. Under load many submits
//! share one fsync; alone, a submit pays one.
//!
//! Tables: `tasks` (id → [`TaskRecord`], the task's spec, state and output locations — the
//! object metadata), `evidence` (sequence → [`Evidence`]: worker deaths for the chain side),
//! `clusters` (lease → [`ClusterRecord`]).

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use gpunet_proto::v1 as pb;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::config::Durability;
use crate::error::KeeperError;

const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const EVIDENCE: TableDefinition<u64, &[u8]> = TableDefinition::new("evidence");
const CLUSTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("clusters");

/// Largest number of batches folded into one transaction.
const MAX_GROUP: usize = 4096;

/// One output's location, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputRecord {
    /// Output index.
    #[prost(uint32, tag = "1")]
    pub index: u32,
    /// Inline bytes (when `inline`).
    #[prost(bytes = "bytes", tag = "2")]
    pub data: bytes::Bytes,
    /// True if `data` holds the output.
    #[prost(bool, tag = "3")]
    pub inline: bool,
    /// Size in bytes.
    #[prost(uint64, tag = "4")]
    pub size: u64,
    /// Worker holding it (when not inline).
    #[prost(string, tag = "5")]
    pub worker: String,
}

/// A task as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskRecord {
    /// Task id.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Lease.
    #[prost(string, tag = "2")]
    pub lease: String,
    /// What to run.
    #[prost(message, optional, tag = "3")]
    pub spec: Option<pb::TaskSpec>,
    /// `pb::TaskState` (only accepted-and-waiting or terminal states are written).
    #[prost(int32, tag = "4")]
    pub state: i32,
    /// Attempts so far.
    #[prost(uint32, tag = "5")]
    pub attempts: u32,
    /// `pb::ErrorKind`.
    #[prost(int32, tag = "6")]
    pub error_kind: i32,
    /// Error message.
    #[prost(string, tag = "7")]
    pub error: String,
    /// Exit code of a process task.
    #[prost(int32, optional, tag = "8")]
    pub exit_code: Option<i32>,
    /// Output locations.
    #[prost(message, repeated, tag = "9")]
    pub outputs: Vec<OutputRecord>,
    /// Last worker.
    #[prost(string, tag = "10")]
    pub worker: String,
    /// Dependencies (task ids whose output 0/1 this task reads), resolved at submit.
    #[prost(uint64, repeated, tag = "11")]
    pub deps: Vec<u64>,
}

/// Evidence of a worker failure, for the chain side (a later issue turns it into slashes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Evidence {
    /// Worker id.
    #[prost(string, tag = "1")]
    pub worker: String,
    /// Provider.
    #[prost(string, tag = "2")]
    pub provider: String,
    /// Lease it served, if any.
    #[prost(string, tag = "3")]
    pub lease: String,
    /// What happened ("missed heartbeats for 3.0s", "stream closed: …").
    #[prost(string, tag = "4")]
    pub reason: String,
    /// Unix milliseconds.
    #[prost(uint64, tag = "5")]
    pub at_unix_ms: u64,
    /// Tasks that were running on it.
    #[prost(uint64, repeated, tag = "6")]
    pub tasks: Vec<u64>,
}

/// Cluster state of a lease, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterRecord {
    /// "forming", "ready", "degraded".
    #[prost(string, tag = "1")]
    pub state: String,
    /// Member worker ids.
    #[prost(string, repeated, tag = "2")]
    pub workers: Vec<String>,
}

/// Work for one commit group.
#[derive(Default)]
pub struct Batch {
    /// Task records to write (later ones for the same id win).
    pub tasks: Vec<TaskRecord>,
    /// Evidence to append.
    pub evidence: Vec<Evidence>,
    /// Cluster states to write.
    pub clusters: Vec<(String, ClusterRecord)>,
    /// Completed when the batch is durable (true) or failed (false).
    pub ack: Option<oneshot::Sender<bool>>,
    /// Task ids to hand to the commit sink once durable (terminal states becoming visible).
    pub visible: Vec<u64>,
}

impl Batch {
    /// True when there is nothing to write or acknowledge.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.evidence.is_empty()
            && self.clusters.is_empty()
            && self.ack.is_none()
            && self.visible.is_empty()
    }
}

/// Called on the store thread after each durable commit with the `visible` ids.
pub type CommitSink = Box<dyn Fn(Vec<u64>) + Send>;

/// What a restart finds.
pub struct Loaded {
    /// Every task record.
    pub tasks: Vec<TaskRecord>,
    /// Next evidence sequence number.
    pub next_evidence: u64,
}

/// Handle to the store thread.
pub struct Store {
    tx: parking_lot::Mutex<Option<mpsc::Sender<Batch>>>,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
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

fn load(db: &Database) -> Result<Loaded, KeeperError> {
    let w = db.begin_write()?;
    {
        w.open_table(TASKS)?;
        w.open_table(EVIDENCE)?;
        w.open_table(CLUSTERS)?;
    }
    w.commit()?;
    let r = db.begin_read()?;
    let t = r.open_table(TASKS)?;
    let mut tasks = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        let rec = <TaskRecord as prost::Message>::decode(v.value())
            .map_err(|e| KeeperError::Db(format!("corrupt task record: {e}")))?;
        tasks.push(rec);
    }
    let e = r.open_table(EVIDENCE)?;
    let next_evidence = e.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
    Ok(Loaded {
        tasks,
        next_evidence,
    })
}

impl Store {
    /// Open (or create) the database, load it, and start the commit thread.
    pub fn open(
        path: &str,
        durability: Durability,
        sink_slot: std::sync::Arc<parking_lot::Mutex<Option<CommitSink>>>,
    ) -> Result<(Store, Loaded), KeeperError> {
        let db = open_db(path)?;
        let loaded = load(&db)?;
        let mut evidence_seq = loaded.next_evidence;
        let (tx, rx) = mpsc::channel::<Batch>();
        let thread = std::thread::Builder::new()
            .name("gpunet-store".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(b) => group.push(b),
                            Err(_) => break,
                        }
                    }
                    let res = commit(&db, durability, &mut group, &mut evidence_seq);
                    let ok = match res {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "group commit failed");
                            false
                        }
                    };
                    let mut visible = Vec::new();
                    for b in group {
                        if let Some(a) = b.ack {
                            let _ = a.send(ok);
                        }
                        visible.extend(b.visible);
                    }
                    if ok
                        && !visible.is_empty()
                        && let Some(sink) = sink_slot.lock().as_ref()
                    {
                        sink(visible);
                    }
                }
            })?;
        Ok((
            Store {
                tx: parking_lot::Mutex::new(Some(tx)),
                thread: parking_lot::Mutex::new(Some(thread)),
            },
            loaded,
        ))
    }

    /// Queue a batch. Returns false if the store has shut down.
    pub fn send(&self, b: Batch) -> bool {
        match self.tx.lock().as_ref() {
            Some(tx) => tx.send(b).is_ok(),
            None => false,
        }
    }

    /// Flush everything queued and stop the thread.
    pub fn shutdown(&self) {
        self.tx.lock().take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

fn commit(
    db: &Database,
    durability: Durability,
    group: &mut [Batch],
    evidence_seq: &mut u64,
) -> Result<(), KeeperError> {
    let mut w = db.begin_write()?;
    w.set_durability(match durability {
        Durability::Immediate => redb::Durability::Immediate,
        Durability::None => redb::Durability::None,
    })?;
    {
        let mut t = w.open_table(TASKS)?;
        let mut buf = Vec::new();
        for b in group.iter() {
            for rec in &b.tasks {
                buf.clear();
                prost::Message::encode(rec, &mut buf)
                    .map_err(|e| KeeperError::Db(e.to_string()))?;
                t.insert(rec.id, buf.as_slice())?;
            }
        }
        let mut e = w.open_table(EVIDENCE)?;
        for b in group.iter() {
            for ev in &b.evidence {
                e.insert(*evidence_seq, prost::Message::encode_to_vec(ev).as_slice())?;
                *evidence_seq += 1;
            }
        }
        let mut c = w.open_table(CLUSTERS)?;
        for b in group.iter() {
            for (lease, rec) in &b.clusters {
                c.insert(
                    lease.as_str(),
                    prost::Message::encode_to_vec(rec).as_slice(),
                )?;
            }
        }
    }
    w.commit()?;
    Ok(())
}

/// Read all evidence records (for inspection and tests). Opens the file read-only; the keeper
/// must not be running on it.
pub fn read_evidence(path: &str) -> Result<Vec<Evidence>, KeeperError> {
    let db = Database::open(path)?;
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
