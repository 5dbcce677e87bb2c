//! The write-ahead log's files: segments of checksummed frames, each frame one batch's rows.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::KeeperError;

/// Largest frame, written or replayed (one limit for both sides). A batch that would encode
/// larger is refused loudly and closes the store: it is never acknowledged and then lost.
pub(super) const MAX_FRAME: usize = u32::MAX as usize;

/// One row of a log frame: a numeric key (`num`) or a string key (`key`) and its value.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Row {
    #[prost(uint64, tag = "1")]
    pub(super) num: u64,
    #[prost(string, tag = "2")]
    pub(super) key: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(super) value: Vec<u8>,
}

/// The body of one log frame: everything one [`super::Batch`] changes, already encoded for redb.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct WalBatch {
    /// Sequence number of the batch (consecutive from the store's start).
    #[prost(uint64, tag = "1")]
    pub(super) seq: u64,
    #[prost(message, repeated, tag = "2")]
    pub(super) tasks: Vec<Row>,
    #[prost(message, repeated, tag = "3")]
    pub(super) evidence: Vec<Row>,
    #[prost(message, repeated, tag = "4")]
    pub(super) clusters: Vec<Row>,
    #[prost(message, repeated, tag = "5")]
    pub(super) groups: Vec<Row>,
    /// Task ids removed (retention).
    #[prost(uint64, repeated, tag = "6")]
    pub(super) deleted: Vec<u64>,
    #[prost(message, repeated, tag = "7")]
    pub(super) checkpoints: Vec<Row>,
}

impl WalBatch {
    pub(super) fn has_rows(&self) -> bool {
        !(self.tasks.is_empty()
            && self.evidence.is_empty()
            && self.clusters.is_empty()
            && self.groups.is_empty()
            && self.deleted.is_empty()
            && self.checkpoints.is_empty())
    }
}

pub(super) struct Segment {
    pub(super) number: u64,
    pub(super) file: Arc<File>,
    pub(super) bytes: u64,
}

pub(super) fn wal_dir(path: &str) -> PathBuf {
    PathBuf::from(format!("{path}.wal"))
}

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.log"))
}

/// Segment numbers present in `dir`, ascending.
pub(super) fn segments(dir: &Path) -> Result<Vec<u64>, KeeperError> {
    let mut v = Vec::new();
    if !dir.exists() {
        return Ok(v);
    }
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".log")
            .and_then(|s| s.parse::<u64>().ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Create a segment and make its directory entry durable.
pub(super) fn create_segment(dir: &Path, n: u64) -> Result<Segment, KeeperError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(segment_path(dir, n))?;
    File::open(dir)?.sync_all()?;
    Ok(Segment {
        number: n,
        file: Arc::new(file),
        bytes: 0,
    })
}

/// Append one frame (`len u32 LE ‖ crc32 u32 LE ‖ body`) to `buf`; false if the body is
/// larger than [`MAX_FRAME`].
pub(super) fn frame(buf: &mut Vec<u8>, body: &WalBatch) -> bool {
    buf.clear();
    if prost::Message::encoded_len(body) > MAX_FRAME {
        return false;
    }
    buf.extend_from_slice(&[0; 8]);
    prost::Message::encode(body, buf).expect("Vec grows");
    let len = (buf.len() - 8) as u32;
    let crc = crc32fast::hash(&buf[8..]);
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    true
}

/// Decode the frames of one segment. Returns the batches and whether it ended cleanly.
pub(super) fn read_segment(path: &Path) -> Result<(Vec<WalBatch>, bool), KeeperError> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let Some(head) = data.get(at..at + 8) else {
            return Ok((out, false));
        };
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        // Every written frame has rows, so a zero length is not a frame (zero-filled space).
        if len == 0 || len as usize > MAX_FRAME {
            return Ok((out, false));
        }
        let Some(body) = data.get(at + 8..at + 8 + len as usize) else {
            return Ok((out, false));
        };
        if crc32fast::hash(body) != crc {
            return Ok((out, false));
        }
        match <WalBatch as prost::Message>::decode(body) {
            Ok(b) => out.push(b),
            Err(_) => return Ok((out, false)),
        }
        at += 8 + len as usize;
    }
    Ok((out, true))
}
