#!/usr/bin/env bash
# Time from a confirmed lease transaction to a ready cluster, and the demo's other timings, on
# the localnet: runs `gpunet localnet --exit-after-demo` ROUNDS times (fresh chain each) and
# collects the narrated timings (lease → ready cluster, the DAG, each checkpoint's lag: its
# period's end on the chain's clock → the checkpoint confirmed). Writes bench/results/lease-ready-<UTC>/ (raw output + a
# summary line per round).
# Usage: bench/lease_ready.sh [ROUNDS=3] — env: BIN (default target/debug/gpunet).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/gpunet}
ROUNDS=${1:-3}
OUT="bench/results/lease-ready-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for i in $(seq 1 "$ROUNDS"); do
  rm -rf "$TMP/w" "$TMP/admin.json"
  "$BIN" localnet --exit-after-demo --keeper-port 0 --explorer-port 0 --rpc-port 28899 --ws-port 28900 \
    --dir "$TMP/w" --keypair "$TMP/admin.json" > "$OUT/round-$i.txt" 2> "$OUT/round-$i.err"
  ready=$(sed -n 's/.*cluster ready \([0-9]*\) ms after the lease transaction.*/\1/p' "$OUT/round-$i.txt")
  dag=$(sed -n 's/.*→ 42 in \([0-9]*\) ms.*/\1/p' "$OUT/round-$i.txt")
  lag=$(sed -n 's/.*confirmed \([0-9]*\) ms after its period ended.*/\1/p' "$OUT/round-$i.txt" | paste -sd/)
  echo "round $i: lease transaction → ready cluster ${ready} ms; 4-task DAG ${dag} ms; checkpoint lag ${lag} ms" | tee -a "$OUT/summary.txt"
done
echo "git $(git rev-parse --short HEAD), $(nproc) cores, $BIN" | tee -a "$OUT/summary.txt"
