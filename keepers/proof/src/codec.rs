//! Canonical encoding (borsh 1.x) and the bounded decoder every wire message goes through.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};

use crate::error::ProofError;

/// Largest encoded message accepted by any decoder (64 MiB). The largest honest message,
/// an opening of `MAX_OPENED_TILES` tiles of `MAX_TILE^2` values, is bounded by the
/// parameter check; this cap only stops absurd inputs before borsh sees them.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Canonical bytes of a message.
///
/// Writing into a `Vec` cannot fail and none of the protocol types has a fallible encoding
/// (no floats, no maps), so the `Result` borsh returns is always `Ok` here.
pub(crate) fn to_bytes<T: BorshSerialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    if value.serialize(&mut out).is_err() {
        out.clear();
    }
    out
}

/// Decodes exactly one message from `bytes` (trailing bytes are an error).
pub(crate) fn from_bytes<T: BorshDeserialize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, ProofError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProofError::TooLarge {
            what,
            len: bytes.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    borsh::from_slice(bytes).map_err(|e| ProofError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// SHA-256 of a domain tag followed by the canonical bytes of `value`.
pub(crate) fn hash_tagged<T: BorshSerialize>(tag: &[u8], value: &T) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(to_bytes(value));
    h.finalize().into()
}
