#!/usr/bin/env bash
# Quick gpunet-only dispatch run for A/B-ing keeper builds (not for BENCHMARKS.md, which needs
# Ray side by side: bench/run.sh). One keeper + one worker + `gpunet bench`, ~10 s.
# Usage: bench/quick.sh [durability] — env: BIN (default target/bench/release/gpunet), SCALE
# (0.5), PORT (47311), DB (unset: a fresh file; empty: in-memory keeper), CPUS (the worker's, 2).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/bench/release/gpunet}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PORT=${PORT:-47311}
U=$($BIN key generate --out "$OUT/user.json")
W=$($BIN key generate --out "$OUT/worker.json")
$BIN key generate --out "$OUT/keeper.json" >/dev/null
cat > "$OUT/k.toml" <<TOML
listen = "127.0.0.1:$PORT"
metrics_listen = ""
db_path = "${DB-$OUT/k.redb}"
durability = "${1:-process}"
[[providers]]
id = "p"
worker_keys = ["$W"]
[[leases]]
id = "l"
user = "$U"
provider = "p"
gpus = 1
TOML
GPUNET_LOG=error $BIN keeper run --offline --config "$OUT/k.toml" --keypair "$OUT/keeper.json" >/dev/null 2>&1 & KP=$!
GPUNET_LOG=error $BIN worker run --keeper "http://127.0.0.1:$PORT" --provider p \
  --keypair "$OUT/worker.json" --gpus 1 --cpus "${CPUS:-2}" --work-dir "$OUT/work" >/dev/null 2>&1 & WP=$!
sleep 1
GPUNET_LOG=warn $BIN bench --keeper "http://127.0.0.1:$PORT" --lease l --keypair "$OUT/user.json" \
  --scale "${SCALE:-0.5}" --clients 4 || true
kill $WP $KP 2>/dev/null || true
wait 2>/dev/null || true
