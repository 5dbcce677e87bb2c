//! The keeper's challenge: what to compute, bound to a slot hash, the keeper, the worker
//! and the epoch, and signed by the keeper.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::codec::{from_bytes, hash_tagged, to_bytes};
use crate::error::ProofError;
use crate::params::ChallengeParams;

/// Protocol version carried in every challenge.
pub const PROTOCOL_VERSION: u8 = 2;

const NONCE_TAG: &[u8] = b"gpunet-proof/v1/nonce";
const CHALLENGE_SIG_TAG: &[u8] = b"gpunet-proof/v1/challenge";

/// The GPU class a provider claims for the worker; selects the expected throughput in the
/// timing check ([`GpuClass::expected_tops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
pub enum GpuClass {
    /// No throughput claim: the CPU reference prover, tests, or a first calibration run.
    CpuReference = 0,
    /// NVIDIA GeForce RTX 4090.
    Rtx4090 = 1,
    /// NVIDIA L40S.
    L40s = 2,
    /// NVIDIA A100 (40 or 80 GB).
    A100 = 3,
    /// NVIDIA H100 (SXM or PCIe).
    H100 = 4,
    /// NVIDIA H200.
    H200 = 5,
}

impl GpuClass {
    /// Every class, in table order.
    pub const ALL: [GpuClass; 6] = [
        GpuClass::CpuReference,
        GpuClass::Rtx4090,
        GpuClass::L40s,
        GpuClass::A100,
        GpuClass::H100,
        GpuClass::H200,
    ];

    /// Expected *effective* proof throughput of an honest prover on this class, in int8
    /// TOP/s counted as `2 n^2 inner` per round over the time per round (so PRF and hashing
    /// time count against it). The timing check requires this less the policy's slack,
    /// measured over the time since the challenge (`verify::measured_tops`).
    ///
    /// H100/H200: 85 % of the ~930 TOP/s that bare cuBLAS int8 GEMM reaches there
    /// (TOOLCHAIN.md). The others are **estimates** (vendor dense int8 peak times a typical
    /// cuBLAS efficiency) until the bench binary has been run on such a card.
    pub fn expected_tops(self) -> f64 {
        match self {
            GpuClass::CpuReference => 0.0,
            GpuClass::Rtx4090 => 400.0,
            GpuClass::L40s => 450.0,
            GpuClass::A100 => 450.0,
            GpuClass::H100 => 790.0,
            GpuClass::H200 => 790.0,
        }
    }
}

/// The challenge as the keeper fills it in (everything it signs).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChallengeBody {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u8,
    /// A recent slot.
    pub slot: u64,
    /// The hash of that slot: the worker cannot have known it before the slot.
    pub slot_hash: [u8; 32],
    /// The epoch of the lease checkpoint this proof is for.
    pub epoch: u64,
    /// The keeper's ed25519 public key (signs this challenge).
    pub keeper: [u8; 32],
    /// The worker's ed25519 public key (signs its openings).
    pub worker: [u8; 32],
    /// The GPU class the provider claims for this worker.
    pub gpu_class: GpuClass,
    /// How many of the lease's GPUs this worker answers for (its share of the lease; 0 for a
    /// worker without GPUs or outside a lease). Signed by the keeper before the outcome is
    /// known, so a slash cannot later count a failed worker for more GPUs than it was
    /// challenged for.
    pub gpus: u16,
    /// What to compute and how much will be checked.
    pub params: ChallengeParams,
    /// Fresh keeper randomness, so that two challenges in one slot differ.
    pub keeper_entropy: [u8; 32],
}

impl ChallengeBody {
    /// The nonce every seed derives from: SHA-256 over a tag and the whole body, so it is
    /// bound to the slot hash, keeper, worker, epoch, class and parameters.
    pub fn nonce(&self) -> [u8; 32] {
        hash_tagged(NONCE_TAG, self)
    }

    fn signing_message(&self) -> Vec<u8> {
        let mut msg = CHALLENGE_SIG_TAG.to_vec();
        msg.extend_from_slice(&to_bytes(self));
        msg
    }
}

/// A challenge with the keeper's ed25519 signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedChallenge {
    /// What the keeper signed.
    pub body: ChallengeBody,
    /// ed25519 signature by `body.keeper` over a tag and the body's canonical bytes.
    pub signature: [u8; 64],
}

impl SignedChallenge {
    /// Validates the parameters, checks that `keeper` is the body's keeper, and signs.
    pub fn issue(keeper: &SigningKey, body: ChallengeBody) -> Result<Self, ProofError> {
        body.params.validate()?;
        if body.version != PROTOCOL_VERSION {
            return Err(ProofError::Protocol(format!(
                "challenge version {} is not {PROTOCOL_VERSION}",
                body.version
            )));
        }
        if keeper.verifying_key().to_bytes() != body.keeper {
            return Err(ProofError::Protocol(
                "the signing key is not the challenge's keeper".into(),
            ));
        }
        let signature = keeper.sign(&body.signing_message()).to_bytes();
        Ok(Self { body, signature })
    }

    /// Checks the keeper's signature.
    pub fn verify_signature(&self) -> Result<(), ProofError> {
        let key = VerifyingKey::from_bytes(&self.body.keeper)
            .map_err(|_| ProofError::BadChallengeSignature)?;
        key.verify(
            &self.body.signing_message(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| ProofError::BadChallengeSignature)
    }

    /// The challenge nonce ([`ChallengeBody::nonce`]).
    pub fn nonce(&self) -> [u8; 32] {
        self.body.nonce()
    }

    /// The parameters.
    pub fn params(&self) -> &ChallengeParams {
        &self.body.params
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// Decodes canonical bytes (no signature check; see [`Self::verify_signature`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        from_bytes("challenge", bytes)
    }
}

/// The root that precedes round 1 in the seed chain.
pub const GENESIS_ROOT: [u8; 32] = [0u8; 32];

/// `seed_k = SHA-256(nonce || k as u32 little-endian || root_{k-1})`, rounds numbered from 1,
/// `root_0` = [`GENESIS_ROOT`].
pub fn round_seed(nonce: &[u8; 32], round: u32, previous_root: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(nonce);
    h.update(round.to_le_bytes());
    h.update(previous_root);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(keeper: &SigningKey) -> ChallengeBody {
        ChallengeBody {
            version: PROTOCOL_VERSION,
            slot: 7,
            slot_hash: [1; 32],
            epoch: 3,
            keeper: keeper.verifying_key().to_bytes(),
            worker: [2; 32],
            gpu_class: GpuClass::H100,
            gpus: 1,
            params: ChallengeParams::default(),
            keeper_entropy: [3; 32],
        }
    }

    #[test]
    fn signed_challenge_round_trips_and_verifies() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let c = SignedChallenge::issue(&k, body(&k)).expect("issue");
        c.verify_signature().expect("signature");
        let back = SignedChallenge::decode(&c.encode()).expect("decode");
        assert_eq!(back, c);
    }

    #[test]
    fn tampered_challenge_fails_signature() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let mut c = SignedChallenge::issue(&k, body(&k)).expect("issue");
        c.body.epoch += 1;
        assert!(c.verify_signature().is_err());
    }

    #[test]
    fn nonce_binds_every_field() {
        let k = SigningKey::from_bytes(&[9; 32]);
        let b = body(&k);
        let n0 = b.nonce();
        let mut variants = vec![];
        let mut v = b.clone();
        v.slot_hash[0] ^= 1;
        variants.push(v);
        let mut v = b.clone();
        v.worker[0] ^= 1;
        variants.push(v);
        let mut v = b.clone();
        v.epoch += 1;
        variants.push(v);
        let mut v = b.clone();
        v.keeper[5] ^= 1;
        variants.push(v);
        let mut v = b.clone();
        v.params.rounds += 1;
        variants.push(v);
        for v in variants {
            assert_ne!(v.nonce(), n0);
        }
    }

    #[test]
    fn seeds_depend_on_round_and_previous_root() {
        let n = [5; 32];
        let s1 = round_seed(&n, 1, &GENESIS_ROOT);
        assert_ne!(s1, round_seed(&n, 2, &GENESIS_ROOT));
        assert_ne!(s1, round_seed(&n, 1, &[1; 32]));
        let mut h = Sha256::new();
        h.update(n);
        h.update(1u32.to_le_bytes());
        h.update(GENESIS_ROOT);
        let expect: [u8; 32] = h.finalize().into();
        assert_eq!(s1, expect);
    }
}
