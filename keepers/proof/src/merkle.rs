//! SHA-256 Merkle commitment over the tiles of `C`.
//!
//! * leaf  = SHA-256(`"LEAF"` || the tile's `t x t` int32 values, row-major, little-endian)
//! * node  = SHA-256(`"NODE"` || left || right)
//! * leaves are numbered row-major over tiles (`tile = ti * (n/t) + tj`); the tree is
//!   complete (the leaf count is a power of four); a path lists siblings from the leaf up.
//!
//! The 4-byte tags keep every message word-aligned, which is what lets the CUDA kernels
//! hash `C` without byte shuffling; they also separate leaves from nodes.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::ProofError;

/// Tag hashed before a leaf's values.
pub const LEAF_TAG: [u8; 4] = *b"LEAF";
/// Tag hashed before two child digests.
pub const NODE_TAG: [u8; 4] = *b"NODE";

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// Hash of one tile's values.
pub fn leaf_hash(values: &[i32]) -> Hash {
    let mut h = Sha256::new();
    h.update(LEAF_TAG);
    let mut buf = [0u8; 1024];
    for chunk in values.chunks(256) {
        for (dst, v) in buf.chunks_exact_mut(4).zip(chunk) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        h.update(&buf[..4 * chunk.len()]);
    }
    h.finalize().into()
}

/// Hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(NODE_TAG);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root implied by a leaf, its index and its path (siblings from the bottom up).
pub fn root_from_path(leaf: &Hash, index: u64, path: &[Hash]) -> Hash {
    let mut acc = *leaf;
    let mut idx = index;
    for sib in path {
        acc = if idx & 1 == 0 {
            node_hash(&acc, sib)
        } else {
            node_hash(sib, &acc)
        };
        idx >>= 1;
    }
    acc
}

/// A complete binary Merkle tree, every level kept (the prover needs paths after the fact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (a non-zero power of two of them).
    pub fn from_leaves(leaves: Vec<Hash>) -> Result<Self, ProofError> {
        if !leaves.len().is_power_of_two() {
            return Err(ProofError::Protocol(format!(
                "a Merkle tree needs a power-of-two leaf count, not {}",
                leaves.len()
            )));
        }
        let mut levels = vec![leaves];
        while let Some(below) = levels.last() {
            if below.len() == 1 {
                break;
            }
            let up: Vec<Hash> = if below.len() >= 4096 {
                below
                    .par_chunks_exact(2)
                    .map(|p| node_hash(&p[0], &p[1]))
                    .collect()
            } else {
                below
                    .chunks_exact(2)
                    .map(|p| node_hash(&p[0], &p[1]))
                    .collect()
            };
            levels.push(up);
        }
        Ok(Self { levels })
    }

    /// The root.
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or([0u8; 32])
    }

    /// The leaves.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Siblings of leaf `index` from the bottom up, or `None` if out of range.
    pub fn path(&self, index: u64) -> Option<Vec<Hash>> {
        let count = self.leaves().len() as u64;
        if index >= count {
            return None;
        }
        let mut idx = index as usize;
        let mut out = Vec::with_capacity(self.levels.len().saturating_sub(1));
        for level in &self.levels[..self.levels.len() - 1] {
            out.push(*level.get(idx ^ 1)?);
            idx >>= 1;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_leads_to_the_root_and_only_there() {
        let leaves: Vec<Hash> = (0..16u32).map(|i| leaf_hash(&[i as i32; 4])).collect();
        let tree = MerkleTree::from_leaves(leaves.clone()).expect("tree");
        for (i, leaf) in leaves.iter().enumerate() {
            let path = tree.path(i as u64).expect("path");
            assert_eq!(path.len(), 4);
            assert_eq!(root_from_path(leaf, i as u64, &path), tree.root());
            // Wrong index or wrong leaf gives another root.
            assert_ne!(root_from_path(leaf, (i as u64) ^ 1, &path), tree.root());
            assert_ne!(
                root_from_path(&leaves[(i + 1) % 16], i as u64, &path),
                tree.root()
            );
        }
        assert!(tree.path(16).is_none());
        assert!(MerkleTree::from_leaves(vec![[0; 32]; 3]).is_err());
    }

    #[test]
    fn leaf_hash_is_tagged_little_endian() {
        let mut h = Sha256::new();
        h.update(b"LEAF");
        h.update([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let expect: Hash = h.finalize().into();
        assert_eq!(leaf_hash(&[1, -1]), expect);
    }
}
