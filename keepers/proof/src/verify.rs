//! The verifier: every check of a transcript, each failure named.
//!
//! Cost: two signature checks, `K` SHA-256 for the seed chain, and per opened tile
//! `2 t inner` PRF bytes, `t^2 inner` int8 multiply-adds and `log2((n/t)^2)` node hashes — independent of
//! how long the GPU worked. Single-threaded by design (it is what one keeper core pays).

use crate::challenge::{GENESIS_ROOT, PROTOCOL_VERSION, round_seed};
use crate::merkle::{Hash, leaf_hash, root_from_path};
use crate::tile::compute_tile;
use crate::transcript::Transcript;

pub use crate::rejection::Rejection;

/// How strict the timing check is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingPolicy {
    /// Allowed shortfall below the class's expected throughput, in percent (default 25).
    pub slack_percent: u32,
}

impl Default for TimingPolicy {
    fn default() -> Self {
        Self { slack_percent: 25 }
    }
}

/// What the verifying keeper knows independently of the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectations {
    /// The keeper that must have signed the challenge.
    pub keeper: [u8; 32],
    /// The worker the proof must come from.
    pub worker: [u8; 32],
    /// The epoch being checkpointed.
    pub epoch: u64,
    /// The nonce of the challenge the keeper issued, when it is the issuing keeper
    /// (`None` for another keeper auditing a transcript).
    pub nonce: Option<Hash>,
    /// Timing strictness.
    pub timing: TimingPolicy,
}

impl Expectations {
    /// Expectations of the keeper that issued `challenge`.
    pub fn for_issued(challenge: &crate::challenge::SignedChallenge) -> Self {
        Self {
            keeper: challenge.body.keeper,
            worker: challenge.body.worker,
            epoch: challenge.body.epoch,
            nonce: Some(challenge.nonce()),
            timing: TimingPolicy::default(),
        }
    }
}

/// A proof that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyReport {
    /// The transcript digest (the on-chain evidence).
    pub digest: Hash,
    /// Throughput the timing check used, TOP/s: `2 n^2 inner` per round, all K rounds over
    /// the time from sending the challenge to receiving the last root ([`measured_tops`]).
    pub measured_tops: f64,
    /// Throughput over the gaps between the first and last root only ([`gap_tops`]):
    /// informative (it excludes the network round trip, but a worker that withholds early
    /// roots can inflate it, so no decision rests on it).
    pub gap_tops: f64,
    /// What the claimed class needed, TOP/s.
    pub required_tops: f64,
    /// Tiles checked exactly.
    pub tiles_checked: u32,
}

/// Decodes and verifies transcript bytes.
pub fn verify_bytes(bytes: &[u8], expect: &Expectations) -> Result<VerifyReport, Rejection> {
    let t = Transcript::decode(bytes).map_err(|e| Rejection::Decode(e.to_string()))?;
    verify(&t, expect)
}

/// The throughput the timing check uses (TOP/s): all `K` rounds over the keeper's time from
/// sending the challenge to receiving root `K`, i.e. the sum of every gap between streamed
/// roots *including the first* (challenge to root 1).
///
/// Why not only the gaps between roots, which would leave the network round trip out: the
/// worker derives every seed itself, so it can compute slowly, withhold roots, and send them
/// in a burst — the gaps between roots then say nothing. The time since the challenge cannot
/// be shortened that way; it includes one round trip and the worker's set-up, which the
/// class slack has to absorb (`docs/proof.md`).
pub fn measured_tops(t: &Transcript) -> f64 {
    let ops = t.challenge.params().ops_per_round();
    let Some(last) = t.commits.last() else {
        return 0.0;
    };
    if last.received_us == 0 {
        return f64::INFINITY;
    }
    ops * t.commits.len() as f64 / (last.received_us as f64 * 1e-6) / 1e12
}

/// Throughput over the gaps between the first and the last root only (TOP/s); informative.
/// `None` with fewer than two rounds.
pub fn gap_tops(t: &Transcript) -> Option<f64> {
    let ops = t.challenge.params().ops_per_round();
    let (first, last) = (t.commits.first()?, t.commits.last()?);
    if t.commits.len() < 2 {
        return None;
    }
    let micros = last.received_us.saturating_sub(first.received_us) as f64;
    if micros <= 0.0 {
        return Some(f64::INFINITY);
    }
    Some(ops * (t.commits.len() - 1) as f64 / (micros * 1e-6) / 1e12)
}

/// Runs every check, cheapest first; the first failure is returned.
pub fn verify(t: &Transcript, expect: &Expectations) -> Result<VerifyReport, Rejection> {
    let body = &t.challenge.body;
    let params = body.params;
    params
        .validate()
        .map_err(|e| Rejection::InvalidParams(e.to_string()))?;
    if body.version != PROTOCOL_VERSION {
        return Err(Rejection::UnsupportedVersion(body.version));
    }
    t.challenge
        .verify_signature()
        .map_err(|_| Rejection::BadKeeperSignature)?;
    if body.keeper != expect.keeper {
        return Err(Rejection::WrongKeeper);
    }
    if body.worker != expect.worker {
        return Err(Rejection::WrongWorker);
    }
    if body.epoch != expect.epoch {
        return Err(Rejection::WrongEpoch {
            expected: expect.epoch,
            got: body.epoch,
        });
    }
    let nonce = t.challenge.nonce();
    if expect.nonce.is_some_and(|n| n != nonce) {
        return Err(Rejection::NonceMismatch);
    }

    // The commit stream: K commits, in order, each seed chained to the previous root.
    if t.commits.len() != params.rounds as usize {
        return Err(Rejection::RoundCount {
            expected: params.rounds,
            got: u32::try_from(t.commits.len()).unwrap_or(u32::MAX),
        });
    }
    let mut previous = GENESIS_ROOT;
    let mut previous_time = 0u64;
    for (i, rc) in t.commits.iter().enumerate() {
        let c = &rc.commit;
        let round = i as u32 + 1;
        if c.round != round {
            return Err(Rejection::RoundOutOfOrder {
                index: i as u32,
                round: c.round,
            });
        }
        if c.seed != round_seed(&nonce, round, &previous) {
            return Err(Rejection::SeedMismatch { round });
        }
        if c.root == previous {
            return Err(Rejection::RepeatedRoot { round });
        }
        if rc.received_us < previous_time {
            return Err(Rejection::TimestampsNotMonotonic { round });
        }
        previous = c.root;
        previous_time = rc.received_us;
    }

    // The opening: signed by the worker, exactly the selected tiles.
    let commits = t.round_commits();
    if !t
        .opening
        .verify_signature(&body.worker, &nonce, &commits, &t.request)
    {
        return Err(Rejection::BadWorkerSignature);
    }
    let selection = t.request.selection(&nonce, &params);
    if selection.len() != t.opening.tiles.len() {
        return Err(Rejection::OpeningCount {
            expected: selection.len() as u32,
            got: u32::try_from(t.opening.tiles.len()).unwrap_or(u32::MAX),
        });
    }
    for (i, (want, got)) in selection.iter().zip(&t.opening.tiles).enumerate() {
        if *want != (got.round, got.tile) {
            return Err(Rejection::UnrequestedTile {
                index: i as u32,
                round: got.round,
                tile: got.tile,
            });
        }
    }

    // Each opened tile: shape, Merkle path to the committed root, exact values.
    let depth = params.merkle_depth() as usize;
    let tile_side = params.tile;
    for op in &t.opening.tiles {
        let (round, tile) = (op.round, op.tile);
        if op.values.len() != params.tile_len() || op.path.len() != depth {
            return Err(Rejection::TileShape { round, tile });
        }
        let Some(commit) = (round as usize)
            .checked_sub(1)
            .and_then(|i| t.commits.get(i))
            .map(|c| &c.commit)
        else {
            return Err(Rejection::TileShape { round, tile });
        };
        if root_from_path(&leaf_hash(&op.values), u64::from(tile), &op.path) != commit.root {
            return Err(Rejection::MerklePathInvalid { round, tile });
        }
        let expect_values = compute_tile(&params, &commit.seed, tile);
        if let Some(pos) = expect_values
            .iter()
            .zip(&op.values)
            .position(|(a, b)| a != b)
        {
            return Err(Rejection::TileMismatch {
                round,
                tile,
                row: pos as u32 / tile_side,
                col: pos as u32 % tile_side,
            });
        }
    }

    // Timing: all rounds over the time since the challenge, against the claimed class.
    let measured = measured_tops(t);
    let required = body.gpu_class.expected_tops()
        * f64::from(100u32.saturating_sub(expect.timing.slack_percent.min(100)))
        / 100.0;
    if measured < required {
        return Err(Rejection::TooSlow {
            measured_tops: measured,
            required_tops: required,
        });
    }
    Ok(VerifyReport {
        digest: t.digest(),
        measured_tops: measured,
        gap_tops: gap_tops(t).unwrap_or(measured),
        required_tops: required,
        tiles_checked: t.opening.tiles.len() as u32,
    })
}

/// Whether a transcript proves that its *worker* failed — evidence a keeper's committee may
/// slash the provider on. `Ok(rejection)` when it does; `Err(why not)` otherwise.
///
/// Only the worker's own signed words count: the worker signs the nonce, every round commit,
/// the keeper's opening request and its tiles ([`crate::opening::opening_message`]), so a
/// transcript whose opening signature verifies and which still fails on that content can
/// only come from the worker. Receive times are the keeper's own measurement (a keeper could
/// write any), so `TooSlow` and `TimestampsNotMonotonic` are never evidence against a
/// worker; nor is anything about the keeper's own challenge (its signature, keeper, worker,
/// epoch, parameters). A transcript that verifies is no evidence at all.
pub fn worker_fault(t: &Transcript, expect: &Expectations) -> Result<Rejection, String> {
    let nonce = t.challenge.nonce();
    let commits = t.round_commits();
    if !t
        .opening
        .verify_signature(&t.challenge.body.worker, &nonce, &commits, &t.request)
    {
        return Err("the worker's signature on the opening does not verify".into());
    }
    match verify(t, expect) {
        Ok(_) => Err("the transcript verifies".into()),
        Err(r) => match r {
            Rejection::RoundCount { .. }
            | Rejection::RoundOutOfOrder { .. }
            | Rejection::SeedMismatch { .. }
            | Rejection::RepeatedRoot { .. }
            | Rejection::OpeningCount { .. }
            | Rejection::UnrequestedTile { .. }
            | Rejection::TileShape { .. }
            | Rejection::MerklePathInvalid { .. }
            | Rejection::TileMismatch { .. } => Ok(r),
            other => Err(format!("not the worker's fault: {other}")),
        },
    }
}
