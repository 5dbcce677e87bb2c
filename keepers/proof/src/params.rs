//! Challenge parameters and the sizes derived from them.

use borsh::{BorshDeserialize, BorshSerialize};

use crate::error::ProofError;

/// Smallest supported matrix size (one ChaCha block per row at least).
pub const MIN_N: u32 = 64;
/// Largest supported matrix size and inner dimension: with int8 operands every dot product
/// of length `<= 65,536` fits in an `i32` (|sum| <= 65,536 * 128 * 128 = 2^30), so the
/// product is exact on any hardware.
pub const MAX_N: u32 = 65_536;
/// Smallest tile side.
pub const MIN_TILE: u32 = 4;
/// Largest tile side (a tile of 256 x 256 is already 256 KiB to open).
pub const MAX_TILE: u32 = 256;
/// Most rounds in one challenge.
pub const MAX_ROUNDS: u32 = 4_096;
/// Most tiles opened in one proof (`rounds_sampled * samples_per_round`).
pub const MAX_OPENED_TILES: u32 = 4_096;

/// What the keeper asks the worker to compute and how much of it will be checked.
///
/// Defaults ([`ChallengeParams::default`]) are sized for an H100/H200-class GPU: 64 rounds
/// of `n = 16,384` (about 0.6-0.7 s of GPU work), one tile opened in each of 32 rounds.
/// One tile per sampled round is deliberate: with `s = 1` a prover that does any fraction
/// `F` of the work, however it spreads it over rounds, passes with probability at most
/// `F^32`; with `s > 1` skipping whole rounds would only be caught at `1 - F^r`
/// (`docs/proof.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct ChallengeParams {
    /// Matrix side: every round computes an `n x n` product `C = A * B`. A power of two in
    /// `[MIN_N, MAX_N]`.
    pub n: u32,
    /// Inner dimension: `A` is `n x inner`, `B` is `inner x n`. A power of two in
    /// `[MIN_N, MAX_N]`; `inner = n` (the default) is the square case. A larger `inner`
    /// makes each round more GEMM per byte of `C` hashed (`2 n^2 inner` operations against
    /// `4 n^2` bytes), which is the knob if hashing shows up in the GPU prover's time; the
    /// verifier's cost per tile grows with it in the same proportion as the prover's.
    pub inner: u32,
    /// Number of sequential rounds `K` (each seeded by the previous round's root).
    pub rounds: u32,
    /// Tile side `t`: `C` is committed as `(n/t)^2` Merkle leaves of `t x t` int32 values.
    /// A power of two in `[MIN_TILE, min(n, MAX_TILE)]`.
    pub tile: u32,
    /// Tiles opened in each sampled round (distinct, uniformly chosen).
    pub samples_per_round: u32,
    /// Rounds opened (distinct, uniformly chosen among the `K`).
    pub rounds_sampled: u32,
}

impl Default for ChallengeParams {
    fn default() -> Self {
        Self {
            n: 16_384,
            inner: 16_384,
            rounds: 64,
            tile: 16,
            samples_per_round: 1,
            rounds_sampled: 32,
        }
    }
}

impl ChallengeParams {
    /// Checks every range and relation; all other methods assume this passed.
    pub fn validate(&self) -> Result<(), ProofError> {
        let bad = |msg: String| Err(ProofError::InvalidParams(msg));
        if !self.n.is_power_of_two() || self.n < MIN_N || self.n > MAX_N {
            return bad(format!(
                "n = {} must be a power of two in [{MIN_N}, {MAX_N}]",
                self.n
            ));
        }
        if !self.inner.is_power_of_two() || self.inner < MIN_N || self.inner > MAX_N {
            return bad(format!(
                "inner = {} must be a power of two in [{MIN_N}, {MAX_N}]",
                self.inner
            ));
        }
        if !self.tile.is_power_of_two()
            || self.tile < MIN_TILE
            || self.tile > MAX_TILE
            || self.tile > self.n
        {
            return bad(format!(
                "tile = {} must be a power of two in [{MIN_TILE}, min(n, {MAX_TILE})]",
                self.tile
            ));
        }
        if self.rounds == 0 || self.rounds > MAX_ROUNDS {
            return bad(format!(
                "rounds = {} must be in [1, {MAX_ROUNDS}]",
                self.rounds
            ));
        }
        if self.rounds_sampled == 0 || self.rounds_sampled > self.rounds {
            return bad(format!(
                "rounds_sampled = {} must be in [1, rounds = {}]",
                self.rounds_sampled, self.rounds
            ));
        }
        let tiles = self.tiles_per_round();
        if self.samples_per_round == 0 || u64::from(self.samples_per_round) > tiles {
            return bad(format!(
                "samples_per_round = {} must be in [1, tiles per round = {tiles}]",
                self.samples_per_round
            ));
        }
        let opened = u64::from(self.samples_per_round) * u64::from(self.rounds_sampled);
        if opened > u64::from(MAX_OPENED_TILES) {
            return bad(format!(
                "{opened} opened tiles is more than the {MAX_OPENED_TILES} allowed"
            ));
        }
        Ok(())
    }

    /// Tiles along one side of `C`: `n / t`.
    pub fn tiles_per_side(&self) -> u32 {
        self.n / self.tile.max(1)
    }

    /// Merkle leaves per round: `(n / t)^2`.
    pub fn tiles_per_round(&self) -> u64 {
        let s = u64::from(self.tiles_per_side());
        s * s
    }

    /// Merkle path length (tree depth): `log2((n/t)^2)`.
    pub fn merkle_depth(&self) -> u32 {
        2 * self.tiles_per_side().trailing_zeros()
    }

    /// Values in one tile: `t^2`.
    pub fn tile_len(&self) -> usize {
        (self.tile as usize) * (self.tile as usize)
    }

    /// Integer operations of one round's product, counted as BLAS does: `2 n^2 inner`
    /// (`2 n^3` when square).
    pub fn ops_per_round(&self) -> f64 {
        2.0 * f64::from(self.n).powi(2) * f64::from(self.inner)
    }

    /// A square challenge (`inner = n`).
    pub fn square(
        n: u32,
        rounds: u32,
        tile: u32,
        samples_per_round: u32,
        rounds_sampled: u32,
    ) -> Self {
        Self {
            n,
            inner: n,
            rounds,
            tile,
            samples_per_round,
            rounds_sampled,
        }
    }

    /// Tiles opened in one proof.
    pub fn opened_tiles(&self) -> u32 {
        self.samples_per_round.saturating_mul(self.rounds_sampled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_params_are_valid() {
        let p = ChallengeParams::default();
        p.validate().expect("defaults valid");
        assert_eq!(p.tiles_per_round(), 1 << 20);
        assert_eq!(p.merkle_depth(), 20);
    }

    #[test]
    fn out_of_range_params_are_refused() {
        let ok = ChallengeParams::square(64, 2, 8, 2, 1);
        ok.validate().expect("valid");
        let cases = [
            ChallengeParams { n: 96, ..ok },
            ChallengeParams { n: 32, ..ok },
            ChallengeParams { n: 131_072, ..ok },
            ChallengeParams { inner: 32, ..ok },
            ChallengeParams { inner: 192, ..ok },
            ChallengeParams { tile: 12, ..ok },
            ChallengeParams { tile: 128, ..ok },
            ChallengeParams { tile: 2, ..ok },
            ChallengeParams { rounds: 0, ..ok },
            ChallengeParams {
                rounds_sampled: 3,
                ..ok
            },
            ChallengeParams {
                rounds_sampled: 0,
                ..ok
            },
            ChallengeParams {
                samples_per_round: 0,
                ..ok
            },
            ChallengeParams {
                samples_per_round: 65,
                ..ok
            },
        ];
        for c in cases {
            assert!(c.validate().is_err(), "{c:?} should be refused");
        }
    }
}
