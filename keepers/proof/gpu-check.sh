#!/usr/bin/env bash
# GPU checks for gpunet-proof, in one command. Build here first (no Rust on the GPU machine):
#   cargo build -p gpunet-proof --features cuda --release --bins
# then, on the GPU machine, from the repository root:
#   bash keepers/proof/gpu-check.sh [extra gpunet-proof-bench options]
# Prints: CUDA vs CPU root bit-identity (3 shapes), an end-to-end GPU proof verified, and per
# size the bare cuBLAS int8 gemm_ex TOP/s vs the CUDA prover's effective TOP/s in the same run.
set -euo pipefail
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || true
exec target/release/gpunet-proof-bench --skip-cpu --gpu-n 8192,16384 --gpu-inner-mult 1,4 "$@"
