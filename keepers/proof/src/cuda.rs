//! The CUDA prover (cudarc 0.19, libraries loaded at run time).
//!
//! Per round, on one stream: two NVRTC ChaCha8 kernels fill `A` and `Bt` (one 64-byte block
//! per thread); cuBLAS `gemm_ex` computes `C = A * B` with `CUDA_R_8I` operands,
//! `CUDA_R_32I` output and `CUBLAS_COMPUTE_32I` in the TN layout (both operands k-major —
//! the layout int8 tensor-core GEMM runs at full speed in); an NVRTC kernel hashes each
//! tile of `C` (one thread per tile) and `log2(tiles)` launches build the Merkle levels.
//! Only the 32-byte root comes back to the host; every round's tree stays on the device
//! for the openings, whose tile values are recomputed on the CPU from the seed (cheap).
//!
//! Without a driver, a GPU or the cuBLAS/NVRTC libraries, [`CudaBackend::new`] returns
//! [`ProofError::CudaUnavailable`]; it never panics (library presence is checked before
//! cudarc is touched, and set-up runs under `catch_unwind` as a second guard).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use cudarc::cublas::CudaBlas;
use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};

use crate::backend::RoundBackend;
use crate::error::ProofError;
use crate::merkle::Hash;
use crate::params::ChallengeParams;
use crate::prf::{STREAM_A, STREAM_B, key_words};

/// The kernels' source (also readable as `src/kernels.cu`).
pub const KERNELS_SRC: &str = include_str!("kernels.cu");

const THREADS: u32 = 256;

fn cuda_err(what: &str, e: impl std::fmt::Debug) -> ProofError {
    ProofError::Cuda(format!("{what}: {e:?}"))
}

/// Checks that the CUDA driver, cuBLAS and NVRTC libraries can be loaded, without letting
/// cudarc panic on their absence.
pub fn libraries_present() -> Result<(), ProofError> {
    // SAFETY: these only try to dlopen the libraries by name.
    let (driver, blas, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    let mut missing = Vec::new();
    if !driver {
        missing.push("the CUDA driver (libcuda.so)");
    }
    if !blas {
        missing.push("cuBLAS (libcublas.so.13)");
    }
    if !nvrtc {
        missing.push("NVRTC (libnvrtc.so.13)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ProofError::CudaUnavailable(format!(
            "cannot load {}; on a GPU machine add /usr/local/cuda/lib64 to LD_LIBRARY_PATH",
            missing.join(", ")
        )))
    }
}

fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, ProofError>) -> Result<T, ProofError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(ProofError::CudaUnavailable(format!(
            "{what} panicked inside cudarc"
        ))),
    }
}

fn arch_for(cc: (i32, i32)) -> Option<&'static str> {
    Some(match cc {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

/// The kernels compiled once per process (NVRTC takes a fraction of a second per compile).
fn compiled_kernels(cc: (i32, i32)) -> Result<Ptx, ProofError> {
    static PTX: OnceLock<Mutex<BTreeMap<(i32, i32), Ptx>>> = OnceLock::new();
    let cache = PTX.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(p) = cache.lock().ok().and_then(|m| m.get(&cc).cloned()) {
        return Ok(p);
    }
    let opts = CompileOptions {
        arch: arch_for(cc),
        name: Some("gpunet_proof_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(KERNELS_SRC, opts).map_err(|e| cuda_err("NVRTC compile", e))?;
    if let Ok(mut m) = cache.lock() {
        m.insert(cc, ptx.clone());
    }
    Ok(ptx)
}

/// Device-side state shared by the prover and the bare-GEMM benchmark.
struct Device {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    name: String,
    prf: CudaFunction,
    leaf: CudaFunction,
    node: CudaFunction,
}

impl Device {
    /// The process's device: opened on first use and kept. Creating the CUDA context, the
    /// cuBLAS handle and loading the module take a noticeable fraction of a second; the
    /// keeper's clock starts when it sends the challenge, so a worker must not pay that per
    /// proof ([`warm_up`] pays it before the first one). Each caller binds the context to its
    /// own thread.
    fn shared() -> Result<Arc<Self>, ProofError> {
        static DEVICE: Mutex<Option<Arc<Device>>> = Mutex::new(None);
        let mut slot = DEVICE
            .lock()
            .map_err(|_| ProofError::Cuda("device cache poisoned".into()))?;
        if let Some(d) = slot.as_ref() {
            let d = d.clone();
            guarded("CUDA context bind", || {
                d.stream
                    .context()
                    .bind_to_thread()
                    .map_err(|e| cuda_err("bind context", e))
            })?;
            return Ok(d);
        }
        let d = Arc::new(Device::open()?);
        *slot = Some(d.clone());
        Ok(d)
    }

    fn open() -> Result<Self, ProofError> {
        libraries_present()?;
        guarded("CUDA set-up", || {
            let ctx = CudaContext::new(0)
                .map_err(|e| ProofError::CudaUnavailable(format!("no usable GPU: {e:?}")))?;
            let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
            let cc = ctx
                .compute_capability()
                .map_err(|e| cuda_err("compute capability", e))?;
            let stream = ctx.new_stream().map_err(|e| cuda_err("stream", e))?;
            let blas = CudaBlas::new(stream.clone()).map_err(|e| cuda_err("cuBLAS handle", e))?;
            let ptx = compiled_kernels(cc)?;
            let module = ctx
                .load_module(ptx)
                .map_err(|e| cuda_err("module load", e))?;
            let f = |n: &str| module.load_function(n).map_err(|e| cuda_err(n, e));
            Ok(Self {
                name: format!("{name} (compute capability {}.{})", cc.0, cc.1),
                prf: f("chacha8_fill")?,
                leaf: f("leaf_hash")?,
                node: f("node_hash")?,
                stream,
                blas,
            })
        })
    }

    fn grid(count: u64) -> Result<LaunchConfig, ProofError> {
        let blocks = u32::try_from(count.div_ceil(u64::from(THREADS)))
            .map_err(|_| ProofError::Cuda("launch too large".into()))?;
        Ok(LaunchConfig {
            grid_dim: (blocks.max(1), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        })
    }

    fn fill(
        &self,
        out: &mut CudaSlice<u8>,
        key: &[u32; 8],
        stream_id: u64,
    ) -> Result<(), ProofError> {
        let nblocks = (out.len() / 64) as u64;
        let cfg = Self::grid(nblocks)?;
        let mut b = self.stream.launch_builder(&self.prf);
        b.arg(out).arg(&nblocks);
        for k in key {
            b.arg(k);
        }
        b.arg(&stream_id);
        // SAFETY: argument list matches `chacha8_fill`; the kernel writes nblocks*64 bytes,
        // exactly `out`'s length.
        unsafe { b.launch(cfg) }.map_err(|e| cuda_err("chacha8_fill", e))?;
        Ok(())
    }

    /// `C = A * B` (row-major `n x n` `C`) from `A` and `Bt` (both `n x k`, k-contiguous),
    /// int8 in, int32 out, TN layout.
    fn gemm(
        &self,
        n: usize,
        k: usize,
        a: &CudaSlice<u8>,
        bt: &CudaSlice<u8>,
        c: &mut CudaSlice<i32>,
    ) -> Result<(), ProofError> {
        let ni = i32::try_from(n).map_err(|_| ProofError::Cuda("n too large".into()))?;
        let ki = i32::try_from(k).map_err(|_| ProofError::Cuda("inner too large".into()))?;
        let (alpha, beta) = (1i32, 0i32);
        let (pa, _ra) = a.device_ptr(&self.stream);
        let (pb, _rb) = bt.device_ptr(&self.stream);
        let (pc, _rc) = c.device_ptr_mut(&self.stream);
        // Column-major view (cuBLAS): the first operand is Bt's memory read as a k x n
        // column-major matrix with op = T, the second A's memory as k x n with op = N, so
        // C_cm(j, i) = sum_k Bt[j][k] * A[i][k] = C[i][j], stored at i*n + j: C row-major.
        // Both operands are k-contiguous (lda = ldb = k): the "TN" form int8 GEMM wants.
        // SAFETY: all three buffers hold n*n elements of the declared types; alpha and
        // beta are i32 as CUBLAS_COMPUTE_32I requires; pointers outlive the call's
        // scheduling (the record guards drop after it).
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                ni,
                ni,
                ki,
                (&alpha as *const i32).cast(),
                pb as *const _,
                cudaDataType_t::CUDA_R_8I,
                ki,
                pa as *const _,
                cudaDataType_t::CUDA_R_8I,
                ki,
                (&beta as *const i32).cast(),
                pc as *mut _,
                cudaDataType_t::CUDA_R_32I,
                ni,
                cublasComputeType_t::CUBLAS_COMPUTE_32I,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| cuda_err("cublasGemmEx int8", e))
    }
}

/// Word offset of each Merkle level in a round's tree buffer (level 0 = leaves).
fn level_offsets(tiles: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut off, mut count) = (0u64, tiles);
    loop {
        out.push((off, count));
        if count <= 1 {
            break;
        }
        off += count * 8;
        count /= 2;
    }
    out
}

fn words_to_hash(w: &[u32]) -> Hash {
    let mut h = [0u8; 32];
    for (dst, v) in h.chunks_exact_mut(4).zip(w) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
    h
}

/// The CUDA prover backend.
pub struct CudaBackend {
    params: ChallengeParams,
    dev: Arc<Device>,
    a: CudaSlice<u8>,
    bt: CudaSlice<u8>,
    c: CudaSlice<i32>,
    trees: Vec<CudaSlice<u32>>,
    levels: Vec<(u64, u64)>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.dev.name)
            .field("params", &self.params)
            .finish()
    }
}

/// Opens GPU 0 (context, stream, cuBLAS handle, kernels compiled and loaded) and keeps it for
/// the process, so that later proofs only allocate their buffers. Returns the GPU's name;
/// [`ProofError::CudaUnavailable`] without a driver, GPU or library. A worker with a GPU calls
/// it once at start.
pub fn warm_up() -> Result<String, ProofError> {
    Device::shared().map(|d| d.name.clone())
}

impl CudaBackend {
    /// Opens GPU 0 (once per process: [`warm_up`]), compiles the kernels and allocates `A`, `Bt`, `C` and one Merkle tree
    /// per round. [`ProofError::CudaUnavailable`] when there is no driver, GPU or library.
    pub fn new(params: ChallengeParams) -> Result<Self, ProofError> {
        params.validate()?;
        let dev = Device::shared()?;
        let (n, k) = (params.n as usize, params.inner as usize);
        let tiles = params.tiles_per_round();
        let levels = level_offsets(tiles);
        let tree_words = (2 * tiles - 1) as usize * 8;
        let need = 2 * n * k + 4 * n * n + params.rounds as usize * tree_words * 4;
        let ctx = dev.stream.context().clone();
        let (free, _) = ctx.mem_get_info().map_err(|e| cuda_err("memory info", e))?;
        if need > free {
            return Err(ProofError::Cuda(format!(
                "needs {need} bytes of device memory, {free} free"
            )));
        }
        let s = &dev.stream;
        let a = s
            .alloc_zeros::<u8>(n * k)
            .map_err(|e| cuda_err("alloc A", e))?;
        let bt = s
            .alloc_zeros::<u8>(n * k)
            .map_err(|e| cuda_err("alloc Bt", e))?;
        let c = s
            .alloc_zeros::<i32>(n * n)
            .map_err(|e| cuda_err("alloc C", e))?;
        let mut trees = Vec::with_capacity(params.rounds as usize);
        for _ in 0..params.rounds {
            trees.push(
                s.alloc_zeros::<u32>(tree_words)
                    .map_err(|e| cuda_err("alloc tree", e))?,
            );
        }
        Ok(Self {
            params,
            dev,
            a,
            bt,
            c,
            trees,
            levels,
        })
    }

    /// The GPU's name.
    pub fn device_name(&self) -> &str {
        &self.dev.name
    }

    /// Times `iters` bare cuBLAS int8 GEMMs of this backend's size on the same buffers
    /// (after one warm-up); returns seconds per GEMM.
    pub fn bare_gemm_seconds(&mut self, iters: u32) -> Result<f64, ProofError> {
        let (n, k) = (self.params.n as usize, self.params.inner as usize);
        self.dev.gemm(n, k, &self.a, &self.bt, &mut self.c)?;
        self.dev
            .stream
            .synchronize()
            .map_err(|e| cuda_err("sync", e))?;
        let start = Instant::now();
        for _ in 0..iters.max(1) {
            self.dev.gemm(n, k, &self.a, &self.bt, &mut self.c)?;
        }
        self.dev
            .stream
            .synchronize()
            .map_err(|e| cuda_err("sync", e))?;
        Ok(start.elapsed().as_secs_f64() / f64::from(iters.max(1)))
    }

    fn tree_index(&self, round: u32) -> Result<usize, ProofError> {
        let i = round
            .checked_sub(1)
            .map(|r| r as usize)
            .filter(|&r| r < self.trees.len())
            .ok_or_else(|| ProofError::Protocol(format!("no round {round}")))?;
        Ok(i)
    }
}

impl RoundBackend for CudaBackend {
    fn name(&self) -> String {
        format!("CUDA prover on {}", self.dev.name)
    }

    fn compute_round(&mut self, round: u32, seed: &Hash) -> Result<Hash, ProofError> {
        let ri = self.tree_index(round)?;
        let (n, k) = (self.params.n as usize, self.params.inner as usize);
        let key = key_words(seed);
        self.dev.fill(&mut self.a, &key, STREAM_A)?;
        self.dev.fill(&mut self.bt, &key, STREAM_B)?;
        self.dev.gemm(n, k, &self.a, &self.bt, &mut self.c)?;

        let t_log2 = self.params.tile.trailing_zeros();
        let tps_log2 = self.params.tiles_per_side().trailing_zeros();
        let ntiles = u32::try_from(self.params.tiles_per_round())
            .map_err(|_| ProofError::Cuda("too many tiles".into()))?;
        let n32 = self.params.n;
        let tree = &mut self.trees[ri];
        {
            let mut leaves = tree.slice_mut(0..ntiles as usize * 8);
            let mut b = self.dev.stream.launch_builder(&self.dev.leaf);
            b.arg(&self.c)
                .arg(&mut leaves)
                .arg(&n32)
                .arg(&t_log2)
                .arg(&tps_log2)
                .arg(&ntiles);
            // SAFETY: matches `leaf_hash`; reads n*n i32 of C, writes ntiles*8 words.
            unsafe { b.launch(Device::grid(u64::from(ntiles))?) }
                .map_err(|e| cuda_err("leaf_hash", e))?;
        }
        for w in self.levels.windows(2) {
            let ((below_off, below_count), (above_off, above_count)) = (w[0], w[1]);
            let (lo, mut hi) = tree.split_at_mut(above_off as usize);
            let below = lo.slice(below_off as usize..(below_off + below_count * 8) as usize);
            let mut above = hi.slice_mut(0..(above_count * 8) as usize);
            let count = above_count as u32;
            let mut b = self.dev.stream.launch_builder(&self.dev.node);
            b.arg(&below).arg(&mut above).arg(&count);
            // SAFETY: matches `node_hash`; reads 2*count digests, writes count digests.
            unsafe { b.launch(Device::grid(above_count)?) }
                .map_err(|e| cuda_err("node_hash", e))?;
        }
        let (root_off, _) = self.levels.last().copied().unwrap_or((0, 1));
        let root = self
            .dev
            .stream
            .clone_dtoh(&tree.slice(root_off as usize..root_off as usize + 8))
            .map_err(|e| cuda_err("copy root", e))?;
        Ok(words_to_hash(&root))
    }

    fn merkle_path(&mut self, round: u32, tile: u32) -> Result<Vec<Hash>, ProofError> {
        let ri = self.tree_index(round)?;
        if u64::from(tile) >= self.params.tiles_per_round() {
            return Err(ProofError::Protocol(format!("no tile {tile}")));
        }
        let tree = &self.trees[ri];
        let mut idx = u64::from(tile);
        let mut path = Vec::new();
        for &(off, _) in &self.levels[..self.levels.len() - 1] {
            let at = (off + (idx ^ 1) * 8) as usize;
            let w = self
                .dev
                .stream
                .clone_dtoh(&tree.slice(at..at + 8))
                .map_err(|e| cuda_err("copy path", e))?;
            path.push(words_to_hash(&w));
            idx >>= 1;
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MerkleTree, leaf_hash};

    #[test]
    fn level_offsets_lay_out_a_complete_tree() {
        let l = level_offsets(16);
        assert_eq!(l, vec![(0, 16), (128, 8), (192, 4), (224, 2), (240, 1)]);
        let (off, count) = l[l.len() - 1];
        assert_eq!((off + count * 8) as usize, (2 * 16 - 1) * 8);
        assert_eq!(level_offsets(1), vec![(0, 1)]);
    }

    #[test]
    fn device_words_are_big_endian_digest_bytes() {
        let tree = MerkleTree::from_leaves(vec![leaf_hash(&[1, 2, 3, 4])]).expect("tree");
        let root = tree.root();
        let words: Vec<u32> = root
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words_to_hash(&words), root);
    }

    #[test]
    fn missing_driver_is_an_error_not_a_panic() {
        let p = ChallengeParams::square(64, 1, 8, 1, 1);
        match CudaBackend::new(p) {
            Ok(b) => assert!(b.name().contains("CUDA")),
            Err(ProofError::CudaUnavailable(m)) | Err(ProofError::Cuda(m)) => {
                assert!(!m.is_empty())
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
}
