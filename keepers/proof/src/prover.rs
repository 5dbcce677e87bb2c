//! The worker's side: run the rounds on a backend, stream each root as it exists, then
//! answer the keeper's opening request.

use std::time::Instant;

use ed25519_dalek::SigningKey;

use crate::challenge::{GENESIS_ROOT, SignedChallenge, round_seed};
use crate::cpu::CpuBackend;
use crate::error::ProofError;
use crate::merkle::Hash;
use crate::opening::{Opening, OpeningRequest, RoundCommit, TileOpening};
use crate::params::ChallengeParams;

pub use crate::backend::RoundBackend;

/// What the worker keeps between streaming roots and opening tiles.
#[derive(Clone, Debug)]
pub struct ProverRun {
    nonce: Hash,
    params: ChallengeParams,
    commits: Vec<RoundCommit>,
}

/// Runs all rounds of `challenge` on `backend`, handing each commit to `on_commit` as soon
/// as its round ends (the worker sends it to the keeper there).
///
/// Checks the keeper's signature first.
pub fn prove<B: RoundBackend + ?Sized>(
    challenge: &SignedChallenge,
    backend: &mut B,
    mut on_commit: impl FnMut(&RoundCommit) -> Result<(), ProofError>,
) -> Result<ProverRun, ProofError> {
    challenge.verify_signature()?;
    let params = *challenge.params();
    params.validate()?;
    let nonce = challenge.nonce();
    let start = Instant::now();
    let mut previous = GENESIS_ROOT;
    let mut commits = Vec::with_capacity(params.rounds as usize);
    for round in 1..=params.rounds {
        let seed = round_seed(&nonce, round, &previous);
        let root = backend.compute_round(round, &seed)?;
        let commit = RoundCommit {
            round,
            seed,
            root,
            worker_elapsed_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        on_commit(&commit)?;
        previous = root;
        commits.push(commit);
    }
    Ok(ProverRun {
        nonce,
        params,
        commits,
    })
}

impl ProverRun {
    /// The commits streamed so far (all of them once [`prove`] returned).
    pub fn commits(&self) -> &[RoundCommit] {
        &self.commits
    }

    /// Opens the tiles `request` selects, signed with the worker's key.
    pub fn open<B: RoundBackend + ?Sized>(
        &self,
        backend: &mut B,
        request: &OpeningRequest,
        worker: &SigningKey,
    ) -> Result<Opening, ProofError> {
        let mut tiles = Vec::new();
        for (round, tile) in request.selection(&self.nonce, &self.params) {
            let seed = self
                .commits
                .get(round as usize - 1)
                .map(|c| c.seed)
                .ok_or_else(|| ProofError::Protocol(format!("round {round} was not run")))?;
            let values = backend.tile_values(&self.params, round, &seed, tile)?;
            let path = backend.merkle_path(round, tile)?;
            tiles.push(TileOpening {
                round,
                tile,
                values,
                path,
            });
        }
        Ok(Opening::sign(
            worker,
            &self.nonce,
            &self.commits,
            request,
            tiles,
        ))
    }
}

/// The best backend available: CUDA if a driver, a GPU and the libraries are there,
/// otherwise the CPU reference. The message says which, and why it fell back.
pub fn best_backend(
    params: ChallengeParams,
) -> Result<(Box<dyn RoundBackend>, String), ProofError> {
    match crate::cuda::CudaBackend::new(params) {
        Ok(gpu) => {
            let msg = format!("proving on {}", gpu.name());
            Ok((Box::new(gpu), msg))
        }
        Err(e) => {
            let cpu = CpuBackend::new(params)?;
            let msg = format!(
                "CUDA prover unavailable ({e}); falling back to the {}",
                cpu.name()
            );
            Ok((Box::new(cpu), msg))
        }
    }
}
