//! Exact int8 x int8 -> int32 products on the CPU, in the "TN" form the whole crate uses:
//! `out[r][c] = sum_k a[r][k] * b[c][k]` with both operands stored k-contiguous.
//!
//! Two kernels, chosen at run time: AVX-512 VNNI (`vpdpbusd`, 64 multiply-adds per
//! instruction; signed x signed via the identity `a*b = (a+128)*b - 128*b`) and a portable
//! one the compiler vectorises. Both are exact: with `k <= 65,536` every partial and final
//! sum fits in `i32`, and the VNNI path uses wrapping arithmetic whose result is the true
//! value because the true value fits.

/// Register block: 4 rows of `a` against 4 rows of `b`.
const RB: usize = 4;

/// Dot products of `ra` rows of `a` with `rb` rows of `b` (each `k` long); the result for
/// row `r` of `a` and row `c` of `b` goes to `out[r * ld_out + c]`.
///
/// Requirements (checked; the function returns without writing when violated, which the
/// callers never do): `ra`, `rb` multiples of 4, `k` a multiple of 64, slices long enough.
pub fn dots(a: &[i8], ra: usize, b: &[i8], rb: usize, k: usize, out: &mut [i32], ld_out: usize) {
    if !ra.is_multiple_of(RB)
        || !rb.is_multiple_of(RB)
        || !k.is_multiple_of(64)
        || a.len() < ra * k
        || b.len() < rb * k
        || ld_out < rb
        || (ra > 0 && out.len() < (ra - 1) * ld_out + rb)
    {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if vnni_available() {
            // SAFETY: features checked; bounds checked above.
            unsafe { dots_vnni(a, ra, b, rb, k, out, ld_out) };
            return;
        }
    }
    dots_portable(a, ra, b, rb, k, out, ld_out)
}

/// Whether the AVX-512 VNNI kernel runs on this CPU.
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Portable kernel (also the reference the fast one is tested against).
pub fn dots_portable(
    a: &[i8],
    ra: usize,
    b: &[i8],
    rb: usize,
    k: usize,
    out: &mut [i32],
    ld_out: usize,
) {
    for r0 in (0..ra).step_by(RB) {
        for c0 in (0..rb).step_by(RB) {
            let mut acc = [[0i32; RB]; RB];
            let ar: [&[i8]; RB] = std::array::from_fn(|i| &a[(r0 + i) * k..(r0 + i + 1) * k]);
            let br: [&[i8]; RB] = std::array::from_fn(|i| &b[(c0 + i) * k..(c0 + i + 1) * k]);
            for kk in (0..k).step_by(64) {
                for (r, arow) in ar.iter().enumerate() {
                    for (c, brow) in br.iter().enumerate() {
                        let mut s = 0i32;
                        for (x, y) in arow[kk..kk + 64].iter().zip(&brow[kk..kk + 64]) {
                            s += i32::from(*x) * i32::from(*y);
                        }
                        acc[r][c] = acc[r][c].wrapping_add(s);
                    }
                }
            }
            for r in 0..RB {
                for c in 0..RB {
                    out[(r0 + r) * ld_out + c0 + c] = acc[r][c];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dots_vnni(
    a: &[i8],
    ra: usize,
    b: &[i8],
    rb: usize,
    k: usize,
    out: &mut [i32],
    ld_out: usize,
) {
    use std::arch::x86_64::*;
    let flip = _mm512_set1_epi8(i8::MIN);
    let ones = _mm512_set1_epi8(1);
    for r0 in (0..ra).step_by(RB) {
        for c0 in (0..rb).step_by(RB) {
            let ap: [*const i8; RB] = std::array::from_fn(|i| a[(r0 + i) * k..].as_ptr());
            let bp: [*const i8; RB] = std::array::from_fn(|i| b[(c0 + i) * k..].as_ptr());
            let mut acc = [[_mm512_setzero_si512(); RB]; RB];
            let mut bsum = [_mm512_setzero_si512(); RB];
            let mut kk = 0;
            while kk < k {
                // SAFETY: kk + 64 <= k and every row has k bytes (checked by `dots`).
                let au: [__m512i; RB] = std::array::from_fn(|i| unsafe {
                    _mm512_xor_si512(_mm512_loadu_si512(ap[i].add(kk).cast()), flip)
                });
                let bv: [__m512i; RB] =
                    std::array::from_fn(|i| unsafe { _mm512_loadu_si512(bp[i].add(kk).cast()) });
                for r in 0..RB {
                    for c in 0..RB {
                        acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], au[r], bv[c]);
                    }
                }
                for c in 0..RB {
                    bsum[c] = _mm512_dpbusd_epi32(bsum[c], ones, bv[c]);
                }
                kk += 64;
            }
            for c in 0..RB {
                let bs = _mm512_reduce_add_epi32(bsum[c]);
                for r in 0..RB {
                    let s = _mm512_reduce_add_epi32(acc[r][c]);
                    out[(r0 + r) * ld_out + c0 + c] = s.wrapping_sub(bs.wrapping_mul(128));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[i8], ra: usize, b: &[i8], rb: usize, k: usize) -> Vec<i32> {
        let mut out = vec![0i32; ra * rb];
        for r in 0..ra {
            for c in 0..rb {
                out[r * rb + c] = (0..k)
                    .map(|x| i32::from(a[r * k + x]) * i32::from(b[c * k + x]))
                    .sum();
            }
        }
        out
    }

    fn pseudo(len: usize, salt: u8) -> Vec<i8> {
        let mut v = vec![0i8; len];
        crate::prf::fill(
            &crate::prf::key_words(&[salt; 32]),
            0,
            0,
            crate::prf::as_u8_mut(&mut v),
        );
        v
    }

    #[test]
    fn kernels_match_naive_including_extremes() {
        let (ra, rb, k) = (8, 12, 192);
        let mut a = pseudo(ra * k, 1);
        let mut b = pseudo(rb * k, 2);
        // Extremes: a row of -128 against a row of -128 and of 127.
        a[..k].fill(i8::MIN);
        b[..k].fill(i8::MIN);
        b[k..2 * k].fill(i8::MAX);
        let expect = naive(&a, ra, &b, rb, k);
        let mut got = vec![0i32; ra * rb];
        dots(&a, ra, &b, rb, k, &mut got, rb);
        assert_eq!(got, expect);
        let mut port = vec![0i32; ra * rb];
        dots_portable(&a, ra, &b, rb, k, &mut port, rb);
        assert_eq!(port, expect);
        assert_eq!(expect[0], 128 * 128 * k as i32);
        assert_eq!(expect[1], -128 * 127 * k as i32);
    }

    #[test]
    fn largest_n_extreme_values_stay_exact() {
        let k = 65_536;
        let a = vec![i8::MIN; 4 * k];
        let b = vec![i8::MIN; 4 * k];
        let mut out = vec![0i32; 16];
        dots(&a, 4, &b, 4, k, &mut out, 4);
        assert!(out.iter().all(|&v| v == 1 << 30));
        let b2 = vec![i8::MAX; 4 * k];
        dots(&a, 4, &b2, 4, k, &mut out, 4);
        assert!(out.iter().all(|&v| v == -128 * 127 * 65_536));
    }
}
