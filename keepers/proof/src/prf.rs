//! The counter-based PRF that fills the int8 matrices: ChaCha8 (Bernstein's original layout,
//! 64-bit block counter, 64-bit stream id), keyed by the round seed.
//!
//! Element `(row, col)` of a matrix is byte `row * inner + col` of the key stream whose stream id
//! is [`STREAM_A`] or [`STREAM_B`], read as a two's-complement `i8`. Any element is therefore
//! computable alone (one ChaCha block), and any row is a contiguous run of blocks — the
//! verifier regenerates just the rows and columns it needs. `B` is generated *transposed*
//! (`Bt[j][k] = B[k][j]`), so both operands are "k-major": exactly the TN layout cuBLAS
//! wants for int8, and the layout in which a tile's columns are contiguous rows.
//!
//! ChaCha8 rather than SHA-256 as the PRF: it is a keyed stream cipher with no known
//! distinguisher at 8 rounds and costs about 1/15 of SHA-256 per output byte, which keeps
//! the GPU prover's PRF time small next to its GEMM and keeps the verifier's cost (it must
//! regenerate `2 t n` bytes per opened tile) to tens of microseconds per tile.

/// Stream id of the left operand `A` (row-major, `A[i][k]`).
pub const STREAM_A: u64 = 0;
/// Stream id of the right operand, stored transposed (`Bt[j][k] = B[k][j]`).
pub const STREAM_B: u64 = 1;

/// Bytes in one ChaCha block.
pub const BLOCK_BYTES: usize = 64;

const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
const LANES: usize = 8;

/// The ChaCha key words of a 32-byte seed (little-endian, as in RFC 7539).
pub fn key_words(seed: &[u8; 32]) -> [u32; 8] {
    let mut k = [0u32; 8];
    for (i, w) in k.iter_mut().enumerate() {
        *w = u32::from_le_bytes([
            seed[4 * i],
            seed[4 * i + 1],
            seed[4 * i + 2],
            seed[4 * i + 3],
        ]);
    }
    k
}

/// One ChaCha8 block (scalar; the reference every faster path is tested against).
pub fn block(key: &[u32; 8], stream: u64, counter: u64) -> [u8; 64] {
    let init = initial_state(key, stream, counter);
    let mut x = init;
    for _ in 0..4 {
        qr(&mut x, 0, 4, 8, 12);
        qr(&mut x, 1, 5, 9, 13);
        qr(&mut x, 2, 6, 10, 14);
        qr(&mut x, 3, 7, 11, 15);
        qr(&mut x, 0, 5, 10, 15);
        qr(&mut x, 1, 6, 11, 12);
        qr(&mut x, 2, 7, 8, 13);
        qr(&mut x, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for w in 0..16 {
        out[4 * w..4 * w + 4].copy_from_slice(&x[w].wrapping_add(init[w]).to_le_bytes());
    }
    out
}

fn initial_state(key: &[u32; 8], stream: u64, counter: u64) -> [u32; 16] {
    [
        SIGMA[0],
        SIGMA[1],
        SIGMA[2],
        SIGMA[3],
        key[0],
        key[1],
        key[2],
        key[3],
        key[4],
        key[5],
        key[6],
        key[7],
        counter as u32,
        (counter >> 32) as u32,
        stream as u32,
        (stream >> 32) as u32,
    ]
}

#[inline(always)]
fn qr(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane loops written for the vectoriser
fn qr8(x: &mut [[u32; LANES]; 16], a: usize, b: usize, c: usize, d: usize) {
    for l in 0..LANES {
        x[a][l] = x[a][l].wrapping_add(x[b][l]);
        x[d][l] = (x[d][l] ^ x[a][l]).rotate_left(16);
        x[c][l] = x[c][l].wrapping_add(x[d][l]);
        x[b][l] = (x[b][l] ^ x[c][l]).rotate_left(12);
        x[a][l] = x[a][l].wrapping_add(x[b][l]);
        x[d][l] = (x[d][l] ^ x[a][l]).rotate_left(8);
        x[c][l] = x[c][l].wrapping_add(x[d][l]);
        x[b][l] = (x[b][l] ^ x[c][l]).rotate_left(7);
    }
}

/// Eight consecutive blocks at once, lanes side by side so the compiler vectorises them.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn blocks8(key: &[u32; 8], stream: u64, counter: u64, out: &mut [u8]) {
    let mut init = [[0u32; LANES]; 16];
    for l in 0..LANES {
        let s = initial_state(key, stream, counter.wrapping_add(l as u64));
        for w in 0..16 {
            init[w][l] = s[w];
        }
    }
    let mut x = init;
    for _ in 0..4 {
        qr8(&mut x, 0, 4, 8, 12);
        qr8(&mut x, 1, 5, 9, 13);
        qr8(&mut x, 2, 6, 10, 14);
        qr8(&mut x, 3, 7, 11, 15);
        qr8(&mut x, 0, 5, 10, 15);
        qr8(&mut x, 1, 6, 11, 12);
        qr8(&mut x, 2, 7, 8, 13);
        qr8(&mut x, 3, 4, 9, 14);
    }
    for (l, chunk) in out.chunks_exact_mut(BLOCK_BYTES).take(LANES).enumerate() {
        for w in 0..16 {
            chunk[4 * w..4 * w + 4]
                .copy_from_slice(&x[w][l].wrapping_add(init[w][l]).to_le_bytes());
        }
    }
}

#[inline(always)]
fn fill_body(key: &[u32; 8], stream: u64, first_block: u64, out: &mut [u8]) {
    let mut counter = first_block;
    let mut chunks = out.chunks_exact_mut(LANES * BLOCK_BYTES);
    for chunk in &mut chunks {
        blocks8(key, stream, counter, chunk);
        counter = counter.wrapping_add(LANES as u64);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut tmp = [0u8; LANES * BLOCK_BYTES];
        blocks8(key, stream, counter, &mut tmp);
        let len = rest.len();
        rest.copy_from_slice(&tmp[..len]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
fn fill_avx512(key: &[u32; 8], stream: u64, first_block: u64, out: &mut [u8]) {
    fill_body(key, stream, first_block, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_avx2(key: &[u32; 8], stream: u64, first_block: u64, out: &mut [u8]) {
    fill_body(key, stream, first_block, out)
}

/// Fills `out` with the key stream starting at block `first_block` (byte offset
/// `64 * first_block`). `out` may have any length; a partial last block is truncated.
pub fn fill(key: &[u32; 8], stream: u64, first_block: u64, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        match simd_level() {
            // SAFETY: the CPU supports the features the function was compiled for.
            2 => return unsafe { fill_avx512(key, stream, first_block, out) },
            // SAFETY: as above.
            1 => return unsafe { fill_avx2(key, stream, first_block, out) },
            _ => {}
        }
    }
    fill_body(key, stream, first_block, out)
}

/// 2 = AVX-512, 1 = AVX2, 0 = baseline; capped like the int8 kernel by
/// `GPUNET_PROOF_KERNEL` (`avx2` caps at AVX2, `sse2`/`portable` at baseline).
#[cfg(target_arch = "x86_64")]
fn simd_level() -> u8 {
    static L: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *L.get_or_init(|| {
        let cap = match std::env::var("GPUNET_PROOF_KERNEL").as_deref() {
            Ok("avx2") => 1,
            Ok("sse2") | Ok("portable") => 0,
            _ => 2,
        };
        let have = if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            2
        } else if std::arch::is_x86_feature_detected!("avx2") {
            1
        } else {
            0
        };
        have.min(cap)
    })
}

/// Fills consecutive rows (starting at `first_row`, `out.len() / row_len` of them) of a
/// matrix with `row_len` columns (the inner dimension) of the given stream. `row_len` must be
/// a multiple of 64 (guaranteed by parameter validation).
pub fn fill_rows(key: &[u32; 8], stream: u64, row_len: usize, first_row: usize, out: &mut [i8]) {
    let first_block = (first_row * row_len / BLOCK_BYTES) as u64;
    fill(key, stream, first_block, as_u8_mut(out));
}

/// One matrix element computed on its own (one ChaCha block); `row_len` is the inner
/// dimension.
pub fn element(seed: &[u8; 32], stream: u64, row_len: u64, row: u64, col: u64) -> i8 {
    let index = row.wrapping_mul(row_len).wrapping_add(col);
    let blk = block(&key_words(seed), stream, index / BLOCK_BYTES as u64);
    blk[(index % BLOCK_BYTES as u64) as usize] as i8
}

/// Views an `i8` slice as bytes.
pub(crate) fn as_u8_mut(s: &mut [i8]) -> &mut [u8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u8>(), s.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    #[test]
    fn matches_an_independent_chacha8() {
        // rand_chacha's ChaCha8Rng uses the same layout (64-bit counter, 64-bit stream).
        let seed = [7u8; 32];
        for stream in [STREAM_A, STREAM_B] {
            let mut rng = rand_chacha::ChaCha8Rng::from_seed(seed);
            rng.set_stream(stream);
            let mut expect = vec![0u8; 64 * 20];
            rng.fill_bytes(&mut expect);
            let mut got = vec![0u8; 64 * 20];
            fill(&key_words(&seed), stream, 0, &mut got);
            assert_eq!(got, expect);
            assert_eq!(&block(&key_words(&seed), stream, 3)[..], &expect[192..256]);
        }
    }

    #[test]
    fn fill_at_offset_equals_tail_of_fill_from_zero() {
        let key = key_words(&[3u8; 32]);
        let mut all = vec![0u8; 64 * 37];
        fill(&key, STREAM_B, 0, &mut all);
        let mut tail = vec![0u8; 64 * 37 - 64 * 11 - 5];
        fill(&key, STREAM_B, 11, &mut tail);
        assert_eq!(&tail[..], &all[64 * 11..64 * 37 - 5]);
        let mut portable = vec![0u8; 64 * 37];
        fill_body(&key, STREAM_B, 0, &mut portable);
        assert_eq!(portable, all);
    }

    #[test]
    fn element_matches_rows() {
        let seed = [11u8; 32];
        let n = 128usize;
        let mut rows = vec![0i8; 3 * n];
        fill_rows(&key_words(&seed), STREAM_A, n, 5, &mut rows);
        for r in 0..3 {
            for c in [0usize, 1, 63, 64, 127] {
                assert_eq!(
                    rows[r * n + c],
                    element(&seed, STREAM_A, n as u64, (5 + r) as u64, c as u64)
                );
            }
        }
    }
}
