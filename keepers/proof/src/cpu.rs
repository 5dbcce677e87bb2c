//! The CPU reference prover: blocked, multithreaded (rayon), exact.
//!
//! A round generates `A` and `Bt` with the PRF, then each rayon task takes a band of tile
//! rows, and for every tile column computes the `t x t` tiles of that band with the
//! 4x4-register int8 kernel ([`crate::gemm::dots`]) and hashes each tile as soon as it
//! exists (the tile is still in L1). The band's rows of `A` stay in L2 while the columns of
//! `Bt` stream past.

use rayon::prelude::*;

use crate::backend::RoundBackend;
use crate::error::ProofError;
use crate::gemm::dots;
use crate::merkle::{Hash, MerkleTree, leaf_hash};
use crate::params::ChallengeParams;
use crate::prf::{STREAM_A, STREAM_B, fill_rows, key_words};

pub use crate::tile::{compute_tile, tile_panel};

/// Generates a whole `n x inner` operand (`A`, or `Bt`) in parallel.
pub fn generate_matrix(params: &ChallengeParams, seed: &Hash, stream: u64) -> Vec<i8> {
    let (n, k) = (params.n as usize, params.inner as usize);
    let key = key_words(seed);
    let mut m = vec![0i8; n * k];
    let rows_per_task = (65_536 / k).max(1);
    m.par_chunks_mut(rows_per_task * k)
        .enumerate()
        .for_each(|(i, chunk)| fill_rows(&key, stream, k, i * rows_per_task, chunk));
    m
}

/// One full round on the CPU: the Merkle tree over all tiles of `C`.
pub fn compute_round_tree(params: &ChallengeParams, seed: &Hash) -> Result<MerkleTree, ProofError> {
    params.validate()?;
    let (k, t) = (params.inner as usize, params.tile as usize);
    let tps = params.tiles_per_side() as usize;
    let a = generate_matrix(params, seed, STREAM_A);
    let bt = generate_matrix(params, seed, STREAM_B);
    // At least 64 rows of A per task, but enough tasks to keep every thread busy.
    let threads = rayon::current_num_threads().max(1);
    let mut band = (64 / t).max(1);
    while band > 1 && tps / band < 4 * threads {
        band /= 2;
    }
    let mut leaves: Vec<Hash> = vec![[0u8; 32]; tps * tps];
    leaves
        .par_chunks_mut(band * tps)
        .enumerate()
        .for_each(|(bi, out)| {
            let mut tile = vec![0i32; t * t];
            let rows_in_band = out.len() / tps;
            for tj in 0..tps {
                let bp = &bt[tj * t * k..(tj + 1) * t * k];
                for r in 0..rows_in_band {
                    let ti = bi * band + r;
                    let ap = &a[ti * t * k..(ti + 1) * t * k];
                    dots(ap, t, bp, t, k, &mut tile, t);
                    out[r * tps + tj] = leaf_hash(&tile);
                }
            }
        });
    MerkleTree::from_leaves(leaves)
}

/// The CPU reference backend: keeps every round's tree for the openings.
#[derive(Debug)]
pub struct CpuBackend {
    params: ChallengeParams,
    trees: Vec<MerkleTree>,
}

impl CpuBackend {
    /// A backend for challenges with these parameters.
    pub fn new(params: ChallengeParams) -> Result<Self, ProofError> {
        params.validate()?;
        Ok(Self {
            params,
            trees: Vec::new(),
        })
    }
}

impl RoundBackend for CpuBackend {
    fn name(&self) -> String {
        format!(
            "CPU reference ({} threads, {:?} int8 kernel)",
            rayon::current_num_threads(),
            crate::gemm::kernel()
        )
    }

    fn compute_round(&mut self, round: u32, seed: &Hash) -> Result<Hash, ProofError> {
        if round as usize != self.trees.len() + 1 {
            return Err(ProofError::Protocol(format!(
                "round {round} computed out of order"
            )));
        }
        let tree = compute_round_tree(&self.params, seed)?;
        let root = tree.root();
        self.trees.push(tree);
        Ok(root)
    }

    fn merkle_path(&mut self, round: u32, tile: u32) -> Result<Vec<Hash>, ProofError> {
        round
            .checked_sub(1)
            .and_then(|r| self.trees.get(r as usize))
            .and_then(|t| t.path(u64::from(tile)))
            .ok_or_else(|| ProofError::Protocol(format!("no tile {tile} in round {round}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prf::element;

    #[test]
    fn full_round_tiles_equal_single_tile_recomputation_and_naive_product() {
        let params = ChallengeParams {
            inner: 256,
            ..ChallengeParams::square(128, 1, 16, 1, 1)
        };
        let seed = [42u8; 32];
        let tree = compute_round_tree(&params, &seed).expect("round");
        for tile in [0u32, 5, 63] {
            let v = compute_tile(&params, &seed, tile);
            assert_eq!(leaf_hash(&v), tree.leaves()[tile as usize]);
        }
        // One entry of C from single PRF elements, the slow way.
        let (i, j) = (37u64, 101u64);
        let expect: i32 = (0..256u64)
            .map(|k| {
                i32::from(element(&seed, STREAM_A, 256, i, k))
                    * i32::from(element(&seed, STREAM_B, 256, j, k))
            })
            .sum();
        let tile = (i / 16) as u32 * 8 + (j / 16) as u32;
        let v = compute_tile(&params, &seed, tile);
        assert_eq!(v[((i % 16) * 16 + (j % 16)) as usize], expect);
    }
}
