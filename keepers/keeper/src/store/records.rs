//! The rows the store keeps, as prost messages (the same encoding in the log and in redb).

use gpunet_proto::v1 as pb;

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
    /// Unix milliseconds when the task became terminal (0 while it is not); retention counts
    /// from here.
    #[prost(uint64, tag = "12")]
    pub finished_unix_ms: u64,
}

/// What a piece of [`Evidence`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EvidenceKind {
    /// A worker died (missed heartbeats, stream closed) with tasks on it.
    WorkerDied = 0,
    /// A benchmark-proof verdict.
    Proof = 1,
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
    /// Tasks that were running on it (a proof verdict: the proof task).
    #[prost(uint64, repeated, tag = "6")]
    pub tasks: Vec<u64>,
    /// What this is: a worker death or a benchmark-proof verdict ([`EvidenceKind`]). Tags 7
    /// and 8 held the kind and the verdict as strings before they were enums.
    #[prost(enumeration = "EvidenceKind", tag = "13")]
    pub kind: i32,
    /// A proof's verdict.
    #[prost(enumeration = "pb::ProofOutcome", tag = "14")]
    pub verdict: i32,
    /// The stage a proof ended in (for a timeout: the wait that ran out).
    #[prost(enumeration = "pb::ProofStage", tag = "15")]
    pub stage: i32,
    /// A refused proof: the `gpunet_proof::Rejection` variant, or a failed proof task's error
    /// kind.
    #[prost(string, tag = "9")]
    pub rejection: String,
    /// The proof's transcript digest (32 bytes, what the chain side posts); empty when no
    /// opening arrived.
    #[prost(bytes = "bytes", tag = "10")]
    pub digest: bytes::Bytes,
    /// The borsh-encoded `gpunet_proof::Transcript` the digest is over.
    #[prost(bytes = "bytes", tag = "11")]
    pub transcript: bytes::Bytes,
    /// Measured throughput of the proof, TOP/s.
    #[prost(double, tag = "12")]
    pub measured_tops: f64,
}

/// Cluster state of a lease, as persisted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterRecord {
    /// The cluster's state (tag 1 held it as a string before it was an enum).
    #[prost(enumeration = "pb::ClusterState", tag = "3")]
    pub state: i32,
    /// Member worker ids.
    #[prost(string, repeated, tag = "2")]
    pub workers: Vec<String>,
}

/// A placement group, as persisted (re-created with the same id on restart, so tasks that
/// target it keep working).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupRecord {
    /// Lease whose cluster holds it.
    #[prost(string, tag = "1")]
    pub lease: String,
    /// Placement group id (unique within the lease's cluster).
    #[prost(uint64, tag = "2")]
    pub id: u64,
    /// Bundles, in order.
    #[prost(message, repeated, tag = "3")]
    pub bundles: Vec<pb::Resources>,
    /// `pb::PlacementStrategy`.
    #[prost(int32, tag = "4")]
    pub strategy: i32,
    /// Removed by its user: not re-created on restart (its id is not handed out again).
    #[prost(bool, tag = "5")]
    pub removed: bool,
}

/// A checkpoint the chain side posts, recorded before it is sent (the wire message served by
/// `GetTranscript`, stored as is).
pub type CheckpointRecord = pb::CheckpointTranscript;
