//! Exact int8 x int8 -> int32 products on the CPU, in the "TN" form the whole crate uses:
//! `out[r][c] = sum_k a[r][k] * b[c][k]` with both operands stored k-contiguous.
//!
//! Kernels, chosen at run time: AVX-512 VNNI (`vpdpbusd`, 64 multiply-adds per instruction;
//! signed x signed via the identity `a*b = (a+128)*b - 128*b`), AVX2 and SSE2 (`pmaddwd` on
//! sign-extended 16-bit lanes), and a scalar one elsewhere. All are exact: with
//! `k <= 65,536` every partial and final sum fits in `i32`, and the VNNI path uses wrapping
//! arithmetic whose result is the true value because the true value fits.

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
    match kernel() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY (all three): the CPU has the features; bounds checked above.
        Kernel::Vnni => unsafe { dots_vnni(a, ra, b, rb, k, out, ld_out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { dots_avx2(a, ra, b, rb, k, out, ld_out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Sse2 => unsafe { dots_sse2(a, ra, b, rb, k, out, ld_out) },
        _ => dots_portable(a, ra, b, rb, k, out, ld_out),
    }
}

/// The int8 kernel in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI.
    Vnni,
    /// AVX2 `vpmaddwd`.
    Avx2,
    /// SSE2 `pmaddwd` (every x86_64 CPU).
    Sse2,
    /// Scalar.
    Portable,
}

/// The fastest kernel this CPU runs. `GPUNET_PROOF_KERNEL=vnni|avx2|sse2|portable` caps it
/// (for measuring what a keeper without AVX-512 pays); an unavailable choice is ignored.
pub fn kernel() -> Kernel {
    static K: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *K.get_or_init(|| {
        let mut available = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            available.push(Kernel::Sse2);
            if std::arch::is_x86_feature_detected!("avx2") {
                available.push(Kernel::Avx2);
            }
            if vnni_available() {
                available.push(Kernel::Vnni);
            }
        }
        let wanted = match std::env::var("GPUNET_PROOF_KERNEL").as_deref() {
            Ok("vnni") => Some(Kernel::Vnni),
            Ok("avx2") => Some(Kernel::Avx2),
            Ok("sse2") => Some(Kernel::Sse2),
            Ok("portable") => Some(Kernel::Portable),
            _ => None,
        };
        match wanted {
            Some(w) if available.contains(&w) => w,
            _ => available.last().copied().unwrap_or(Kernel::Portable),
        }
    })
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(
    a: &[i8],
    ra: usize,
    b: &[i8],
    rb: usize,
    k: usize,
    out: &mut [i32],
    ld_out: usize,
) {
    use std::arch::x86_64::*;
    // 2 x 4 block: 8 accumulators + 6 operands fit the 16 ymm registers.
    for r0 in (0..ra).step_by(2) {
        for c0 in (0..rb).step_by(RB) {
            let ap: [*const i8; 2] = std::array::from_fn(|i| a[(r0 + i) * k..].as_ptr());
            let bp: [*const i8; RB] = std::array::from_fn(|i| b[(c0 + i) * k..].as_ptr());
            let mut acc = [[_mm256_setzero_si256(); RB]; 2];
            let mut kk = 0;
            while kk < k {
                // SAFETY: kk + 16 <= k and every row has k bytes (checked by `dots`).
                let av: [__m256i; 2] = std::array::from_fn(|i| unsafe {
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(ap[i].add(kk).cast()))
                });
                let bv: [__m256i; RB] = std::array::from_fn(|i| unsafe {
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(bp[i].add(kk).cast()))
                });
                for r in 0..2 {
                    for c in 0..RB {
                        acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(av[r], bv[c]));
                    }
                }
                kk += 16;
            }
            for r in 0..2 {
                for c in 0..RB {
                    let v = acc[r][c];
                    let s =
                        _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                    out[(r0 + r) * ld_out + c0 + c] = hsum128(s);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn hsum128(v: std::arch::x86_64::__m128i) -> i32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64.
    unsafe {
        let s = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
unsafe fn dots_sse2(
    a: &[i8],
    ra: usize,
    b: &[i8],
    rb: usize,
    k: usize,
    out: &mut [i32],
    ld_out: usize,
) {
    use std::arch::x86_64::*;
    // Sign-extends 8 int8 to 8 int16: interleave each byte with itself, shift right 8.
    #[inline(always)]
    unsafe fn load8(p: *const i8) -> __m128i {
        // SAFETY: the caller guarantees 8 readable bytes.
        unsafe {
            let x = _mm_loadl_epi64(p.cast());
            _mm_srai_epi16(_mm_unpacklo_epi8(x, x), 8)
        }
    }
    for r0 in (0..ra).step_by(2) {
        for c0 in (0..rb).step_by(RB) {
            let ap: [*const i8; 2] = std::array::from_fn(|i| a[(r0 + i) * k..].as_ptr());
            let bp: [*const i8; RB] = std::array::from_fn(|i| b[(c0 + i) * k..].as_ptr());
            let mut acc = [[_mm_setzero_si128(); RB]; 2];
            let mut kk = 0;
            while kk < k {
                // SAFETY: kk + 8 <= k and every row has k bytes (checked by `dots`).
                let av: [__m128i; 2] = std::array::from_fn(|i| unsafe { load8(ap[i].add(kk)) });
                let bv: [__m128i; RB] = std::array::from_fn(|i| unsafe { load8(bp[i].add(kk)) });
                for r in 0..2 {
                    for c in 0..RB {
                        acc[r][c] = _mm_add_epi32(acc[r][c], _mm_madd_epi16(av[r], bv[c]));
                    }
                }
                kk += 8;
            }
            for r in 0..2 {
                for c in 0..RB {
                    out[(r0 + r) * ld_out + c0 + c] = hsum128(acc[r][c]);
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
        #[cfg(target_arch = "x86_64")]
        {
            let mut v = vec![0i32; ra * rb];
            // SAFETY: SSE2 is baseline on x86_64; shapes are valid.
            unsafe { dots_sse2(&a, ra, &b, rb, k, &mut v, rb) };
            assert_eq!(v, expect, "sse2");
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut v = vec![0i32; ra * rb];
                // SAFETY: feature checked.
                unsafe { dots_avx2(&a, ra, &b, rb, k, &mut v, rb) };
                assert_eq!(v, expect, "avx2");
            }
            if vnni_available() {
                let mut v = vec![0i32; ra * rb];
                // SAFETY: feature checked.
                unsafe { dots_vnni(&a, ra, &b, rb, k, &mut v, rb) };
                assert_eq!(v, expect, "vnni");
            }
        }
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
