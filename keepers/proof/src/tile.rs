//! One tile of `C = A * B`, computed alone from its round seed: the verifier's check and the
//! default way a backend opens a tile (see [`crate::backend::RoundBackend::tile_values`]).

use crate::gemm::dots;
use crate::merkle::Hash;
use crate::params::ChallengeParams;
use crate::prf::{STREAM_A, STREAM_B, fill_rows, key_words};

/// Rows of `A` (and of `Bt`) for tile-row (tile-column) `index`: `t x inner` int8 values.
pub fn tile_panel(params: &ChallengeParams, seed: &Hash, stream: u64, index: u32) -> Vec<i8> {
    let (k, t) = (params.inner as usize, params.tile as usize);
    let mut panel = vec![0i8; t * k];
    fill_rows(&key_words(seed), stream, k, index as usize * t, &mut panel);
    panel
}

/// The exact values of one tile of `C = A * B` for a round seed, regenerating only the `t`
/// rows of `A` and `t` columns of `B` it depends on. This is the verifier's computation.
pub fn compute_tile(params: &ChallengeParams, seed: &Hash, tile: u32) -> Vec<i32> {
    let tps = params.tiles_per_side().max(1);
    let (ti, tj) = (tile / tps, tile % tps);
    let a = tile_panel(params, seed, STREAM_A, ti);
    let b = tile_panel(params, seed, STREAM_B, tj);
    let t = params.tile as usize;
    let mut out = vec![0i32; t * t];
    dots(&a, t, &b, t, params.inner as usize, &mut out, t);
    out
}
