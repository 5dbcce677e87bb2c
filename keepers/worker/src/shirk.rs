//! A worker that skips its proof work when told: honest (the real prover) until its switch is
//! on, then every tile it commits and opens is a cheap function of the round's seed instead of
//! the matrix product. Its roots still differ round to round, so the keeper's cheap checks
//! pass and only the opened tiles give it away — signed by the worker, which is what lets a
//! committee slash its provider. For `gpunet localnet --demo` and the slashing tests; no
//! worker runs it unless its operator builds it in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ed25519_dalek::SigningKey;
use gpunet_proof::merkle::{Hash, MerkleTree, leaf_hash};
use gpunet_proof::{ChallengeParams, OpeningRequest, ProofError, RoundBackend, SignedChallenge};

use crate::exec::{GpunetProof, ProofExecutor, ProofIo};

/// The switchable shirker (see the module docs).
#[derive(Default)]
pub struct ShirkingProof {
    /// On: skip the work from the next proof on.
    pub shirk: Arc<AtomicBool>,
}

/// Rounds "computed" without the product.
struct NoWork {
    params: ChallengeParams,
    rounds: Vec<(Vec<Vec<i32>>, MerkleTree)>,
}

impl RoundBackend for NoWork {
    fn name(&self) -> String {
        "no work (shirking)".into()
    }

    fn compute_round(&mut self, round: u32, seed: &Hash) -> Result<Hash, ProofError> {
        let x = i32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]) ^ round as i32;
        let tiles: Vec<Vec<i32>> = (0..self.params.tiles_per_round() as u32)
            .map(|t| vec![x.wrapping_add(t as i32); self.params.tile_len()])
            .collect();
        let tree = MerkleTree::from_leaves(tiles.iter().map(|v| leaf_hash(v)).collect())?;
        let root = tree.root();
        self.rounds.push((tiles, tree));
        Ok(root)
    }

    fn merkle_path(&mut self, round: u32, tile: u32) -> Result<Vec<Hash>, ProofError> {
        self.rounds
            .get(round as usize - 1)
            .and_then(|r| r.1.path(u64::from(tile)))
            .ok_or_else(|| ProofError::Protocol("no such tile".into()))
    }

    fn tile_values(
        &mut self,
        _params: &ChallengeParams,
        round: u32,
        _seed: &Hash,
        tile: u32,
    ) -> Result<Vec<i32>, ProofError> {
        self.rounds
            .get(round as usize - 1)
            .and_then(|r| r.0.get(tile as usize).cloned())
            .ok_or_else(|| ProofError::Protocol("no such tile".into()))
    }
}

impl ProofExecutor for ShirkingProof {
    fn prove(&self, ch: &[u8], key: &SigningKey, io: &mut dyn ProofIo) -> Result<String, String> {
        if !self.shirk.load(Ordering::SeqCst) {
            return GpunetProof.prove(ch, key, io);
        }
        let ch = SignedChallenge::decode(ch).map_err(|e| e.to_string())?;
        let mut backend = NoWork {
            params: *ch.params(),
            rounds: Vec::new(),
        };
        let run = gpunet_proof::prove(&ch, &mut backend, |c| {
            io.commit(c.encode()).map_err(ProofError::Protocol)
        })
        .map_err(|e| e.to_string())?;
        let req = OpeningRequest::decode(&io.opening_request()?).map_err(|e| e.to_string())?;
        let opening = run
            .open(&mut backend, &req, key)
            .map_err(|e| e.to_string())?;
        io.opening(opening.encode())?;
        Ok("shirked: no proof work done".into())
    }

    fn warm_up(&self) {
        GpunetProof.warm_up();
    }
}
