#!/usr/bin/env bash
# Sandbox overhead per process task: the worker's process executor unsandboxed, in the
# bubblewrap sandbox and in it with a task cgroup (where one can be made), side by side
# (interleaved), for `true` and for a Python start; then
# runtime-env start, cold and warm, beside a bare interpreter start (all sandboxed).
# Writes bench/results/sandbox-<UTC>/summary.txt.
# Usage: bench/sandbox.sh [TASKS=200] — env: BENCH (default target/debug/gpunet-sandbox-bench;
# built with `cargo build --locked -p gpunet-tests --bin gpunet-sandbox-bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-target/debug/gpunet-sandbox-bench}
TASKS=${1:-200}
OUT="bench/results/sandbox-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
{
  "$BENCH" --tasks "$TASKS" -- true
  echo
  # An absolute path: both paths run the same interpreter (a PATH shim outside the system
  # folders is hidden in the sandbox).
  "$BENCH" --tasks "$((TASKS / 4))" -- /usr/bin/python3 -c "import json"
  echo
  "$BENCH" --runtime-env "$((TASKS / 10))"
  echo
  echo "git $(git rev-parse --short HEAD), $(nproc) cores, $(bwrap --version), $BENCH"
} | tee "$OUT/summary.txt"
