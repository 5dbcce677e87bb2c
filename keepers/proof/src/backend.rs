//! What a prover backend does (the CPU reference in [`crate::cpu`], the CUDA prover in
//! [`crate::cuda`]); the driver in [`crate::prover`] runs the protocol over any of them.

use crate::error::ProofError;
use crate::merkle::Hash;
use crate::params::ChallengeParams;
use crate::tile::compute_tile;

/// Something that computes rounds: the CPU reference or the CUDA prover.
pub trait RoundBackend {
    /// Human-readable description (device, kernel).
    fn name(&self) -> String;

    /// Computes round `round` (from 1, called in order) from its seed, keeps what it needs
    /// to open tiles later, and returns the round's Merkle root.
    fn compute_round(&mut self, round: u32, seed: &Hash) -> Result<Hash, ProofError>;

    /// Merkle path of a tile of an already computed round.
    fn merkle_path(&mut self, round: u32, tile: u32) -> Result<Vec<Hash>, ProofError>;

    /// Values of a tile of an already computed round. The default recomputes the tile from
    /// its seed on the CPU (the same cheap computation the verifier does).
    fn tile_values(
        &mut self,
        params: &ChallengeParams,
        _round: u32,
        seed: &Hash,
        tile: u32,
    ) -> Result<Vec<i32>, ProofError> {
        Ok(compute_tile(params, seed, tile))
    }
}
