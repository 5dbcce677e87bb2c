// Host emulation of src/kernels.cu: compiles the CUDA source with a C++ compiler and a few
// stubs, runs each kernel over its grid on the CPU, and prints the Merkle root of one round.
// tests/proof.rs compares it with the CPU prover, so the kernels' arithmetic (ChaCha8,
// SHA-256, tile layout, padding, Merkle levels) is checked on machines without a GPU.
// The GEMM is the exact cuBLAS call of src/cuda.rs evaluated with cuBLAS's column-major semantics.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

struct uint4 { unsigned x, y, z, w; };
static inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return uint4{a, b, c, d}; }
struct Dim { unsigned x, y, z; };
static Dim blockIdx, blockDim, threadIdx;
#define __global__
#define __device__
#define __forceinline__ inline
#define __constant__ static const
#define __restrict__
static inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    s &= 31; return s ? (hi << s) | (lo >> (32 - s)) : hi;
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    s &= 31; return s ? (lo >> s) | (hi << (32 - s)) : lo;
}
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    uint64_t v = ((uint64_t)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; ++i) {
        unsigned sel = (s >> (4 * i)) & 7;
        r |= (unsigned)((v >> (8 * sel)) & 0xff) << (8 * i);
    }
    return r;
}

#include "../../src/kernels.cu"

template <class F> static void grid(uint64_t threads, F f) {
    blockDim = Dim{256, 1, 1};
    for (uint64_t i = 0; i < threads; ++i) {
        blockIdx = Dim{(unsigned)(i / 256), 0, 0};
        threadIdx = Dim{(unsigned)(i % 256), 0, 0};
        f();
    }
}

// C(m x n) = op(A) * op(B), column-major, as cublasGemmEx defines it: X(r, c) = X[r + c * ldx];
// op(A) is m x k (A is k x m when transposed), op(B) is k x n.
static void gemm_colmajor_8i_32i(bool ta, bool tb, unsigned m, unsigned n, unsigned k,
                                 const signed char* a, unsigned lda, const signed char* b,
                                 unsigned ldb, int* c, unsigned ldc) {
    for (unsigned x = 0; x < m; ++x)
        for (unsigned y = 0; y < n; ++y) {
            int s = 0;
            for (unsigned z = 0; z < k; ++z) {
                int av = ta ? a[z + (size_t)x * lda] : a[x + (size_t)z * lda];
                int bv = tb ? b[y + (size_t)z * ldb] : b[z + (size_t)y * ldb];
                s += av * bv;
            }
            c[x + (size_t)y * ldc] = s;
        }
}

int main(int argc, char** argv) {
    if (argc != 5) { fprintf(stderr, "usage: emulate N INNER TILE SEED_HEX\n"); return 2; }
    unsigned n = (unsigned)atoi(argv[1]), kk = (unsigned)atoi(argv[2]), t = (unsigned)atoi(argv[3]);
    unsigned char seed[32];
    for (int i = 0; i < 32; ++i) { unsigned b; sscanf(argv[4] + 2 * i, "%2x", &b); seed[i] = (unsigned char)b; }
    unsigned k[8];
    for (int i = 0; i < 8; ++i) k[i] = seed[4*i] | (seed[4*i+1] << 8) | (seed[4*i+2] << 16) | ((unsigned)seed[4*i+3] << 24);
    uint64_t nblocks = (uint64_t)n * kk / 64;
    std::vector<uint4> a(nblocks * 4), bt(nblocks * 4);
    grid(nblocks, [&] { chacha8_fill(a.data(), nblocks, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], 0ull); });
    grid(nblocks, [&] { chacha8_fill(bt.data(), nblocks, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], 1ull); });
    const signed char* A = (const signed char*)a.data();
    const signed char* B = (const signed char*)bt.data();
    // The cuBLAS call of src/cuda.rs, through cuBLAS's documented column-major semantics:
    // gemm_ex(OP_T, OP_N, m = n, n = n, k = inner, A = Bt, lda = inner, B = A, ldb = inner,
    //         C, ldc = n).
    std::vector<int> c((size_t)n * n);
    gemm_colmajor_8i_32i(true, false, n, n, kk, B, kk, A, kk, c.data(), n);
    unsigned tps = n / t, t_log2 = __builtin_ctz(t), tps_log2 = __builtin_ctz(tps), ntiles = tps * tps;
    std::vector<unsigned> level(ntiles * 8);
    grid(ntiles, [&] { leaf_hash(c.data(), level.data(), n, t_log2, tps_log2, ntiles); });
    while (level.size() > 8) {
        unsigned count = (unsigned)(level.size() / 16);
        std::vector<unsigned> up(count * 8);
        grid(count, [&] { node_hash(level.data(), up.data(), count); });
        level.swap(up);
    }
    for (int i = 0; i < 8; ++i) printf("%08x", level[i]);
    printf("\n");
    return 0;
}
