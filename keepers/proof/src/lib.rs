//! # gpunet-proof — benchmark proofs a keeper can verify in milliseconds
//!
//! Exact integer work that only a fast GPU finishes in time, committed before the keeper
//! says what it will check (`docs/proof.md` has the protocol and its soundness argument):
//!
//! ```text
//! keeper                                   worker
//!   SignedChallenge::issue ───────────────▶  prove(challenge, backend, send)
//!                                            for k in 1..=K:
//!                                              seed_k = SHA-256(nonce ‖ k ‖ root_{k-1})
//!                                              A_k, Bt_k = ChaCha8(seed_k)     (prf)
//!                                              C_k = A_k · B_k  (int8 → int32) (cpu / cuda)
//!   KeeperSession::receive  ◀── RoundCommit   root_k = Merkle(tiles of C_k)   (merkle)
//!   (all K roots in)
//!   KeeperSession::request_opening ───────▶  ProverRun::open(request, worker key)
//!   KeeperSession::finish   ◀── Opening
//!   verify(transcript, expectations) → VerifyReport { digest, .. } | Rejection
//! ```
//!
//! Modules: [`params`] (sizes), [`challenge`] (challenge, nonce, seed chain), [`prf`]
//! (ChaCha8 matrices), [`gemm`] (exact int8 CPU kernels), [`merkle`], [`cpu`] (reference
//! prover), [`cuda`] (cuBLAS + NVRTC prover; a stub that reports "unavailable" without the
//! `cuda` feature), [`backend`] (the trait both implement), [`tile`] (one tile alone: the
//! verifier's computation), [`prover`] (driver, backend choice),
//! [`opening`] (request, selection, signed opening), [`transcript`] (record, digest,
//! keeper session), [`verify`] (checks and the timing table's use), [`rejection`] (why a
//! proof was refused).

#![warn(missing_docs)]

pub mod backend;
pub mod challenge;
mod codec;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_off.rs"]
pub mod cuda;
pub mod error;
pub mod gemm;
pub mod merkle;
pub mod opening;
pub mod params;
pub mod prf;
pub mod prover;
pub mod rejection;
pub mod tile;
pub mod transcript;
pub mod verify;

pub use challenge::{ChallengeBody, GpuClass, PROTOCOL_VERSION, SignedChallenge, round_seed};
pub use codec::MAX_MESSAGE_BYTES;
pub use cpu::{CpuBackend, compute_tile};
pub use cuda::{CudaBackend, warm_up as warm_up_cuda};
pub use error::ProofError;
pub use merkle::Hash;
pub use opening::{Opening, OpeningRequest, RoundCommit, TileOpening};
pub use params::ChallengeParams;
pub use prover::{ProverRun, RoundBackend, best_backend, prove};
pub use transcript::{KeeperSession, ReceivedCommit, Transcript, checkpoint_digest};
pub use verify::{
    Expectations, Rejection, TimingPolicy, VerifyReport, verify, verify_bytes, worker_fault,
};
