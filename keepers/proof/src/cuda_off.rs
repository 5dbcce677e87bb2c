//! The CUDA prover when `gpunet-proof` is built without its `cuda` feature (a verifying
//! keeper, the SDK, the CLI's chain commands): the same names, no CUDA loader linked.
//! Asking for a GPU returns [`ProofError::CudaUnavailable`], so [`crate::prover::best_backend`]
//! falls back to the CPU reference exactly as it does on a machine without a GPU.

use crate::backend::RoundBackend;
use crate::error::ProofError;
use crate::merkle::Hash;
use crate::params::ChallengeParams;

/// The kernels' source (also readable as `src/kernels.cu`).
pub const KERNELS_SRC: &str = include_str!("kernels.cu");

const NOT_BUILT: &str =
    "gpunet-proof was built without its `cuda` feature (enable it to prove on a GPU)";

/// Always [`ProofError::CudaUnavailable`]: no CUDA support in this build.
pub fn libraries_present() -> Result<(), ProofError> {
    Err(ProofError::CudaUnavailable(NOT_BUILT.into()))
}

/// Always [`ProofError::CudaUnavailable`]: no CUDA support in this build.
pub fn warm_up() -> Result<String, ProofError> {
    Err(ProofError::CudaUnavailable(NOT_BUILT.into()))
}

/// The CUDA prover backend; no value of it exists in a build without the `cuda` feature.
#[derive(Debug)]
pub enum CudaBackend {}

impl CudaBackend {
    /// Always [`ProofError::CudaUnavailable`]: no CUDA support in this build.
    pub fn new(params: ChallengeParams) -> Result<Self, ProofError> {
        params.validate()?;
        Err(ProofError::CudaUnavailable(NOT_BUILT.into()))
    }

    /// Name of the GPU (never called: no value exists).
    pub fn device_name(&self) -> &str {
        match *self {}
    }
}

impl RoundBackend for CudaBackend {
    fn name(&self) -> String {
        match *self {}
    }

    fn compute_round(&mut self, _round: u32, _seed: &Hash) -> Result<Hash, ProofError> {
        match *self {}
    }

    fn merkle_path(&mut self, _round: u32, _tile: u32) -> Result<Vec<Hash>, ProofError> {
        match *self {}
    }
}
