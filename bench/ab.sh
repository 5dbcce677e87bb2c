#!/usr/bin/env bash
# A/B of two gpunet builds with bench/quick.sh, rounds alternating (A, B, A, B, …) so that a
# drift in the machine's speed hits both alike. Each side runs the quick.sh of its own source
# tree (flags differ between versions). Prints the median of each metric per side.
# Usage: bench/ab.sh ROUNDS A_TREE A_BIN B_TREE B_BIN   (results: bench/results/ab-<time>/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1 A_TREE=$2 A_BIN=$3 B_TREE=$4 B_BIN=$5
OUT=bench/results/ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    tree=${side}_TREE bin=${side}_BIN
    echo "round $r: $side (${!bin})" >&2
    BIN=${!bin} bash "${!tree}/bench/quick.sh" 2>/dev/null \
      | sed "s/^{/{\"side\":\"$side\",\"round\":$r,/" >> "$OUT/raw.jsonl"
  done
done
python3 - "$OUT/raw.jsonl" <<'PY' | tee "$OUT/summary.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
metric = {"sync_noop": "p50_us", "async_noop_1_client": "tasks_per_s",
          "async_noop_4_clients": "tasks_per_s", "result_1mib": "tasks_per_s",
          "chain_1000": "us_per_task", "process_bin_true": "tasks_per_s"}
print(f"{'workload':<22} {'metric':<12} {'A median':>10} {'B median':>10}  B/A   (A runs | B runs)")
for w, m in metric.items():
    a = [r[m] for r in rows if r["workload"] == w and r["side"] == "A"]
    b = [r[m] for r in rows if r["workload"] == w and r["side"] == "B"]
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        runs = lambda v: " ".join(f"{x:.0f}" for x in v)
        print(f"{w:<22} {m:<12} {ma:>10.0f} {mb:>10.0f}  {mb/ma:.2f}  ({runs(a)} | {runs(b)})")
PY
