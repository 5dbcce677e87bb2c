#!/usr/bin/env bash
# A keeper serving N live leases from its chain watcher: reconciliation time and memory.
# Starts `gpunet localnet --bare` (its own process, so the benchmark's memory is the keeper
# side's alone), then runs gpunet-watch-bench against it (N lease accounts written with
# surfpool's setAccount cheat code, then Watcher::reconcile and cluster formation measured).
# Writes bench/results/watch-<UTC>/.
# Usage: bench/watch.sh [LEASES=10000] — env: BIN (default target/debug/gpunet), BENCH
# (default target/debug/gpunet-watch-bench; built with `cargo build --locked -p gpunet-tests
# --bin gpunet-watch-bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/gpunet}
BENCH=${BENCH:-target/debug/gpunet-watch-bench}
LEASES=${1:-10000}
OUT="bench/results/watch-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP=$(mktemp -d)
"$BIN" localnet --bare --rpc-port 28999 --ws-port 29000 --keypair "$TMP/admin.json" \
  --dir "$TMP/w" > "$OUT/localnet.txt" 2>&1 &
NET=$!
trap 'kill $NET 2>/dev/null; wait $NET 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 1 600); do
  grep -q "running" "$OUT/localnet.txt" 2>/dev/null && break
  sleep 0.2
done
"$BENCH" --url http://127.0.0.1:28999 --ws ws://127.0.0.1:29000 --leases "$LEASES" \
  | tee "$OUT/summary.txt"
echo "git $(git rev-parse --short HEAD), $(nproc) cores, $BENCH" | tee -a "$OUT/summary.txt"
