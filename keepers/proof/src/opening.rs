//! The keeper's opening request (fresh randomness drawn after every root is in), the
//! selection it implies, and the worker's signed opening.

use std::collections::BTreeSet;

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::codec::{from_bytes, hash_tagged, to_bytes};
use crate::error::ProofError;
use crate::merkle::Hash;
use crate::params::ChallengeParams;

const SELECT_TAG: &[u8] = b"gpunet-proof/v1/select";
const OPENING_TAG: &[u8] = b"gpunet-proof/v1/opening";
const COMMITS_TAG: &[u8] = b"gpunet-proof/v1/commits";

/// One streamed round commitment.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RoundCommit {
    /// Round number, from 1.
    pub round: u32,
    /// The seed the worker used: must equal `SHA-256(nonce || round || previous root)`.
    pub seed: Hash,
    /// Merkle root over the round's tiles of `C`.
    pub root: Hash,
    /// Worker's own clock: microseconds from receiving the challenge to this root
    /// (informative only; the timing check uses the keeper's receive times).
    pub worker_elapsed_us: u64,
}

impl RoundCommit {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        from_bytes("round commit", bytes)
    }
}

/// Digest of the commit stream (what the worker's opening signature covers).
pub fn commits_digest(commits: &[RoundCommit]) -> Hash {
    hash_tagged(COMMITS_TAG, &commits.to_vec())
}

/// The keeper's opening request: randomness it draws only after all `K` roots arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct OpeningRequest {
    /// 32 fresh random bytes; the selection is derived from them and the nonce.
    pub entropy: [u8; 32],
}

impl OpeningRequest {
    /// A request with entropy from the operating system's random source.
    pub fn fresh() -> Result<Self, ProofError> {
        let mut entropy = [0u8; 32];
        getrandom::fill(&mut entropy).map_err(|e| ProofError::Random(e.to_string()))?;
        Ok(Self { entropy })
    }

    /// The `(round, tile)` pairs to open: `rounds_sampled` distinct rounds, and in each
    /// `samples_per_round` distinct tiles, all uniform; sorted by round then tile.
    pub fn selection(&self, nonce: &Hash, params: &ChallengeParams) -> Vec<(u32, u32)> {
        let mut h = Sha256::new();
        h.update(SELECT_TAG);
        h.update(nonce);
        h.update(self.entropy);
        let mut rng = HashRng::new(h.finalize().into());
        let rounds = rng.subset(u64::from(params.rounds), u64::from(params.rounds_sampled));
        let mut out = Vec::with_capacity(params.opened_tiles() as usize);
        for r in rounds {
            let tiles = rng.subset(
                params.tiles_per_round(),
                u64::from(params.samples_per_round),
            );
            for t in tiles {
                out.push(((r + 1) as u32, t as u32));
            }
        }
        out
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        from_bytes("opening request", bytes)
    }
}

/// A deterministic stream of uniform integers: SHA-256(seed || counter) in counter mode.
struct HashRng {
    seed: Hash,
    counter: u64,
    buf: [u8; 32],
    used: usize,
}

impl HashRng {
    fn new(seed: Hash) -> Self {
        Self {
            seed,
            counter: 0,
            buf: [0; 32],
            used: 32,
        }
    }

    fn next_u64(&mut self) -> u64 {
        if self.used + 8 > 32 {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.buf = h.finalize().into();
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buf[self.used..self.used + 8]);
        self.used += 8;
        u64::from_le_bytes(b)
    }

    /// Uniform in `[0, bound)` by rejection (no modulo bias); `bound > 0`.
    fn below(&mut self, bound: u64) -> u64 {
        let bound = bound.max(1);
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }

    /// A uniform `size`-subset of `[0, total)` (Floyd's algorithm: exactly `size` draws).
    fn subset(&mut self, total: u64, size: u64) -> BTreeSet<u64> {
        let mut set = BTreeSet::new();
        let size = size.min(total);
        for j in (total - size)..total {
            let x = self.below(j + 1);
            if !set.insert(x) {
                set.insert(j);
            }
        }
        set
    }
}

/// One opened tile.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TileOpening {
    /// Round, from 1.
    pub round: u32,
    /// Tile index, row-major over tiles.
    pub tile: u32,
    /// The tile's `t x t` values, row-major.
    pub values: Vec<i32>,
    /// Merkle siblings from the leaf up.
    pub path: Vec<Hash>,
}

/// The worker's answer to an opening request, signed with the worker's key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Opening {
    /// The requested tiles, in the selection's order.
    pub tiles: Vec<TileOpening>,
    /// ed25519 signature by the challenge's worker over [`opening_message`].
    pub worker_signature: [u8; 64],
}

/// What the worker signs: the nonce, every round commit, the request and the tiles. With it
/// a keeper can show other keepers exactly what the worker claimed.
pub fn opening_message(
    nonce: &Hash,
    commits: &[RoundCommit],
    request: &OpeningRequest,
    tiles: &[TileOpening],
) -> Hash {
    let mut h = Sha256::new();
    h.update(OPENING_TAG);
    h.update(nonce);
    h.update(commits_digest(commits));
    h.update(request.entropy);
    h.update(to_bytes(&tiles.to_vec()));
    h.finalize().into()
}

impl Opening {
    /// Signs `tiles` as the worker.
    pub fn sign(
        worker: &SigningKey,
        nonce: &Hash,
        commits: &[RoundCommit],
        request: &OpeningRequest,
        tiles: Vec<TileOpening>,
    ) -> Self {
        let msg = opening_message(nonce, commits, request, &tiles);
        let worker_signature = worker.sign(&msg).to_bytes();
        Self {
            tiles,
            worker_signature,
        }
    }

    /// Checks the worker's signature.
    pub fn verify_signature(
        &self,
        worker: &[u8; 32],
        nonce: &Hash,
        commits: &[RoundCommit],
        request: &OpeningRequest,
    ) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(worker) else {
            return false;
        };
        let msg = opening_message(nonce, commits, request, &self.tiles);
        key.verify(&msg, &Signature::from_bytes(&self.worker_signature))
            .is_ok()
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        from_bytes("opening", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_distinct_sorted_in_range_and_entropy_dependent() {
        let p = ChallengeParams::square(64, 10, 16, 16, 10);
        let req = OpeningRequest { entropy: [1; 32] };
        let sel = req.selection(&[2; 32], &p);
        assert_eq!(sel.len(), 160);
        let mut sorted = sel.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, sel, "sorted and distinct");
        assert!(sel.iter().all(|&(r, t)| (1..=10).contains(&r) && t < 16));
        let other = OpeningRequest { entropy: [3; 32] };
        let p2 = ChallengeParams {
            samples_per_round: 2,
            rounds_sampled: 3,
            ..p
        };
        assert_ne!(req.selection(&[2; 32], &p2), other.selection(&[2; 32], &p2));
        assert_ne!(req.selection(&[2; 32], &p2), req.selection(&[4; 32], &p2));
    }

    #[test]
    fn selection_is_uniform_over_tiles() {
        // 4,000 single draws over 16 tiles: each count ~ Binomial(4000, 1/16), sd ~ 15.3.
        let p = ChallengeParams::square(64, 1, 16, 1, 1);
        let mut counts = [0u32; 16];
        for i in 0..4000u32 {
            let mut e = [0u8; 32];
            e[..4].copy_from_slice(&i.to_le_bytes());
            let sel = OpeningRequest { entropy: e }.selection(&[0; 32], &p);
            counts[sel[0].1 as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (250 - 80..=250 + 80).contains(&c)),
            "{counts:?}"
        );
    }
}
