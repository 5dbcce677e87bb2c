// gpunet-proof CUDA kernels, compiled at run time with NVRTC.
// They must produce bit-identical results to the CPU prover (src/prf.rs, src/merkle.rs).

typedef unsigned int u32;
typedef unsigned long long u64;

__device__ __forceinline__ u32 rotl32(u32 x, u32 r) { return __funnelshift_l(x, x, r); }
__device__ __forceinline__ u32 rotr32(u32 x, u32 r) { return __funnelshift_r(x, x, r); }

#define QR(a, b, c, d)                       \
    a += b; d ^= a; d = rotl32(d, 16);       \
    c += d; b ^= c; b = rotl32(b, 12);       \
    a += b; d ^= a; d = rotl32(d, 8);        \
    c += d; b ^= c; b = rotl32(b, 7);

// ChaCha8 key stream, one 64-byte block per thread: block `blk` of stream `stream_id`
// goes to bytes [64*blk, 64*blk+64) of `out`.
extern "C" __global__ void chacha8_fill(uint4* __restrict__ out, u64 nblocks,
                                        u32 k0, u32 k1, u32 k2, u32 k3,
                                        u32 k4, u32 k5, u32 k6, u32 k7,
                                        u64 stream_id) {
    u64 blk = (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
    if (blk >= nblocks) return;
    const u32 s0 = 0x61707865u, s1 = 0x3320646eu, s2 = 0x79622d32u, s3 = 0x6b206574u;
    const u32 s12 = (u32)blk, s13 = (u32)(blk >> 32);
    const u32 s14 = (u32)stream_id, s15 = (u32)(stream_id >> 32);
    u32 x0 = s0, x1 = s1, x2 = s2, x3 = s3;
    u32 x4 = k0, x5 = k1, x6 = k2, x7 = k3;
    u32 x8 = k4, x9 = k5, x10 = k6, x11 = k7;
    u32 x12 = s12, x13 = s13, x14 = s14, x15 = s15;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        QR(x0, x4, x8, x12)
        QR(x1, x5, x9, x13)
        QR(x2, x6, x10, x14)
        QR(x3, x7, x11, x15)
        QR(x0, x5, x10, x15)
        QR(x1, x6, x11, x12)
        QR(x2, x7, x8, x13)
        QR(x3, x4, x9, x14)
    }
    uint4* o = out + blk * 4;
    o[0] = make_uint4(x0 + s0, x1 + s1, x2 + s2, x3 + s3);
    o[1] = make_uint4(x4 + k0, x5 + k1, x6 + k2, x7 + k3);
    o[2] = make_uint4(x8 + k4, x9 + k5, x10 + k6, x11 + k7);
    o[3] = make_uint4(x12 + s12, x13 + s13, x14 + s14, x15 + s15);
}

__constant__ u32 K256[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

__device__ __forceinline__ void sha256_init(u32 st[8]) {
    st[0] = 0x6a09e667u; st[1] = 0xbb67ae85u; st[2] = 0x3c6ef372u; st[3] = 0xa54ff53au;
    st[4] = 0x510e527fu; st[5] = 0x9b05688cu; st[6] = 0x1f83d9abu; st[7] = 0x5be0cd19u;
}

__device__ __forceinline__ void sha256_compress(u32 st[8], u32 w[16]) {
    u32 a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
#pragma unroll
    for (int i = 0; i < 64; ++i) {
        u32 wi;
        if (i < 16) {
            wi = w[i];
        } else {
            u32 w15 = w[(i - 15) & 15], w2 = w[(i - 2) & 15];
            u32 g0 = rotr32(w15, 7) ^ rotr32(w15, 18) ^ (w15 >> 3);
            u32 g1 = rotr32(w2, 17) ^ rotr32(w2, 19) ^ (w2 >> 10);
            wi = w[i & 15] + g0 + w[(i - 7) & 15] + g1;
            w[i & 15] = wi;
        }
        u32 S1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);
        u32 ch = (e & f) ^ (~e & g);
        u32 t1 = h + S1 + ch + K256[i] + wi;
        u32 S0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);
        u32 mj = (a & b) ^ (a & c) ^ (b & c);
        u32 t2 = S0 + mj;
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    st[0] += a; st[1] += b; st[2] += c; st[3] += d;
    st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

// Leaf digests: one thread per t x t tile of the row-major n x n int32 matrix `c`.
// Message = "LEAF" || values (little-endian int32, row-major). Digest stored as 8 words.
extern "C" __global__ void leaf_hash(const int* __restrict__ c, u32* __restrict__ out,
                                     u32 n, u32 t_log2, u32 tps_log2, u32 ntiles) {
    u32 tile = blockIdx.x * blockDim.x + threadIdx.x;
    if (tile >= ntiles) return;
    const u32 t = 1u << t_log2;
    const u32 ti = tile >> tps_log2;
    const u32 tj = tile & ((1u << tps_log2) - 1u);
    const int* base = c + (u64)(ti * t) * (u64)n + (u64)(tj * t);
    const u32 tt = t * t;
    const u32 bytes = 4u * (1u + tt);
    const u32 nb = (bytes + 9u + 63u) / 64u;
    u32 st[8];
    sha256_init(st);
    for (u32 blk = 0; blk < nb; ++blk) {
        u32 w[16];
        if (blk >= 1u && blk * 16u + 15u <= tt) {
            // Interior block: all 16 words are tile values (indices 16*blk-1 .. 16*blk+14).
#pragma unroll
            for (int q = 0; q < 16; ++q) {
                u32 e = blk * 16u + (u32)q - 1u;
                u32 raw = (u32)base[(u64)(e >> t_log2) * (u64)n + (u64)(e & (t - 1u))];
                w[q] = __byte_perm(raw, 0u, 0x0123u);
            }
        } else {
#pragma unroll
            for (int q = 0; q < 16; ++q) {
                u32 idx = blk * 16u + (u32)q;
                u32 v;
                if (idx == 0u) {
                    v = 0x4C454146u;  // "LEAF"
                } else if (idx <= tt) {
                    u32 e = idx - 1u;
                    u32 raw = (u32)base[(u64)(e >> t_log2) * (u64)n + (u64)(e & (t - 1u))];
                    v = __byte_perm(raw, 0u, 0x0123u);
                } else if (idx == tt + 1u) {
                    v = 0x80000000u;
                } else {
                    v = 0u;
                }
                w[q] = v;
            }
            if (blk == nb - 1u) {
                w[14] = 0u;
                w[15] = bytes * 8u;
            }
        }
        sha256_compress(st, w);
    }
    u32* o = out + (u64)tile * 8u;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = st[i];
}

// One Merkle level: parent p = SHA-256("NODE" || child 2p || child 2p+1).
extern "C" __global__ void node_hash(const u32* __restrict__ below, u32* __restrict__ above,
                                     u32 count_above) {
    u32 p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= count_above) return;
    const u32* l = below + (u64)p * 16u;
    const u32* r = l + 8;
    u32 w[16];
    w[0] = 0x4E4F4445u;  // "NODE"
#pragma unroll
    for (int i = 0; i < 8; ++i) w[1 + i] = l[i];
#pragma unroll
    for (int i = 0; i < 7; ++i) w[9 + i] = r[i];
    u32 st[8];
    sha256_init(st);
    sha256_compress(st, w);
    w[0] = r[7];
    w[1] = 0x80000000u;
#pragma unroll
    for (int i = 2; i < 15; ++i) w[i] = 0u;
    w[15] = 68u * 8u;
    sha256_compress(st, w);
    u32* o = above + (u64)p * 8u;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i] = st[i];
}
