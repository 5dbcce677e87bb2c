//! Errors of the prover, the codecs and the CUDA backend.
//!
//! A proof that is *refused* is not an error of this kind: the verifier returns a
//! [`crate::verify::Rejection`] that names the check that failed.

/// Everything that can go wrong outside of a verification verdict.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The challenge parameters are outside the supported ranges.
    #[error("invalid challenge parameters: {0}")]
    InvalidParams(String),
    /// Bytes that do not decode to the expected message.
    #[error("could not decode {what}: {reason}")]
    Decode {
        /// Which message was being decoded.
        what: &'static str,
        /// Why decoding failed.
        reason: String,
    },
    /// A message larger than the protocol ever produces.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The keeper's signature on a challenge does not verify.
    #[error("the keeper's signature on the challenge does not verify")]
    BadChallengeSignature,
    /// A call made out of protocol order (for example an opening request before all roots).
    #[error("protocol misuse: {0}")]
    Protocol(String),
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// No usable CUDA driver, GPU or library: the caller should fall back to the CPU prover.
    #[error("CUDA unavailable: {0}")]
    CudaUnavailable(String),
    /// A CUDA, cuBLAS or NVRTC call failed while proving.
    #[error("CUDA error: {0}")]
    Cuda(String),
}
