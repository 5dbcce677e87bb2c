//! The whole exchange as one canonical record, its digest (the 32 bytes that go on chain as
//! a checkpoint's evidence), and the keeper's session that builds it.

use std::time::Instant;

use borsh::{BorshDeserialize, BorshSerialize};

use crate::challenge::{GENESIS_ROOT, SignedChallenge, round_seed};
use crate::codec::{from_bytes, hash_tagged, to_bytes};
use crate::error::ProofError;
use crate::merkle::Hash;
use crate::opening::{Opening, OpeningRequest, RoundCommit};
use crate::rejection::Rejection;

const TRANSCRIPT_TAG: &[u8] = b"gpunet-proof/v1/transcript";

/// A round commit as the keeper received it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReceivedCommit {
    /// What the worker sent.
    pub commit: RoundCommit,
    /// Keeper's monotonic clock: microseconds from sending the challenge to receiving this.
    pub received_us: u64,
}

/// Everything exchanged for one proof, in order.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transcript {
    /// The keeper's signed challenge.
    pub challenge: SignedChallenge,
    /// The `K` round commits with their receive times.
    pub commits: Vec<ReceivedCommit>,
    /// The keeper's opening request (its randomness, drawn after the last root).
    pub request: OpeningRequest,
    /// The worker's signed opening.
    pub opening: Opening,
}

impl Transcript {
    /// SHA-256 over a tag and the canonical (borsh) encoding of the whole transcript. Any
    /// keeper holding the transcript recomputes the same 32 bytes.
    pub fn digest(&self) -> Hash {
        hash_tagged(TRANSCRIPT_TAG, self)
    }

    /// The worker's commits without receive times.
    pub fn round_commits(&self) -> Vec<RoundCommit> {
        self.commits.iter().map(|c| c.commit.clone()).collect()
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        from_bytes("transcript", bytes)
    }
}

/// The keeper's side of one proof: create it when the challenge is sent, feed it each
/// commit as it arrives, ask it for the opening request once all roots are in, then finish
/// with the worker's opening and pass the transcript to [`crate::verify::verify`].
#[derive(Debug)]
pub struct KeeperSession {
    challenge: SignedChallenge,
    nonce: Hash,
    started: Instant,
    commits: Vec<ReceivedCommit>,
    request: Option<OpeningRequest>,
}

impl KeeperSession {
    /// Starts the clock: call when the challenge goes out.
    pub fn new(challenge: SignedChallenge) -> Self {
        let nonce = challenge.nonce();
        Self {
            challenge,
            nonce,
            started: Instant::now(),
            commits: Vec::new(),
            request: None,
        }
    }

    /// The challenge this session is for.
    pub fn challenge(&self) -> &SignedChallenge {
        &self.challenge
    }

    /// Records a commit received now. Cheap checks run at once (order, seed chain, a
    /// repeated root), so a bad stream is refused without waiting for the last round.
    pub fn receive(&mut self, commit: RoundCommit) -> Result<(), Rejection> {
        let now = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.receive_at(commit, now)
    }

    /// Records a commit with an explicit receive time (microseconds since the challenge).
    pub fn receive_at(&mut self, commit: RoundCommit, received_us: u64) -> Result<(), Rejection> {
        let expected_round = self.commits.len() as u32 + 1;
        if expected_round > self.challenge.params().rounds {
            return Err(Rejection::RoundCount {
                expected: self.challenge.params().rounds,
                got: expected_round,
            });
        }
        if commit.round != expected_round {
            return Err(Rejection::RoundOutOfOrder {
                index: expected_round - 1,
                round: commit.round,
            });
        }
        let previous = self
            .commits
            .last()
            .map(|c| c.commit.root)
            .unwrap_or(GENESIS_ROOT);
        if commit.seed != round_seed(&self.nonce, commit.round, &previous) {
            return Err(Rejection::SeedMismatch {
                round: commit.round,
            });
        }
        if commit.root == previous {
            return Err(Rejection::RepeatedRoot {
                round: commit.round,
            });
        }
        self.commits.push(ReceivedCommit {
            commit,
            received_us,
        });
        Ok(())
    }

    /// Whether all `K` roots are in.
    pub fn is_complete(&self) -> bool {
        self.commits.len() as u32 == self.challenge.params().rounds
    }

    /// Draws fresh randomness for the opening. Only once all roots are in.
    pub fn request_opening(&mut self) -> Result<OpeningRequest, ProofError> {
        let fresh = OpeningRequest::fresh()?;
        self.request_opening_with(fresh.entropy)
    }

    /// As [`Self::request_opening`] with given randomness (tests, replays).
    pub fn request_opening_with(
        &mut self,
        entropy: [u8; 32],
    ) -> Result<OpeningRequest, ProofError> {
        if !self.is_complete() {
            return Err(ProofError::Protocol(format!(
                "opening requested after {} of {} roots",
                self.commits.len(),
                self.challenge.params().rounds
            )));
        }
        if self.request.is_some() {
            return Err(ProofError::Protocol("opening already requested".into()));
        }
        let req = OpeningRequest { entropy };
        self.request = Some(req);
        Ok(req)
    }

    /// The transcript, once the worker's opening arrived.
    pub fn finish(self, opening: Opening) -> Result<Transcript, ProofError> {
        let request = self
            .request
            .ok_or_else(|| ProofError::Protocol("no opening was requested".into()))?;
        Ok(Transcript {
            challenge: self.challenge,
            commits: self.commits,
            request,
            opening,
        })
    }
}

/// The digest a checkpoint posts for the proofs of all the workers it covers, given in worker
/// order: the one transcript's digest, or SHA-256 over every digest in order (so one GPU cannot
/// answer for the others); all zero when no worker answered.
pub fn checkpoint_digest(digests: &[Hash]) -> Hash {
    use sha2::{Digest, Sha256};
    match digests {
        [] => [0; 32],
        [one] => *one,
        many => {
            let mut h = Sha256::new();
            for d in many {
                h.update(d);
            }
            h.finalize().into()
        }
    }
}
