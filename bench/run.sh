#!/usr/bin/env bash
# Side-by-side dispatch benchmark: Ray vs a gpunet keeper + worker on this machine, in one run,
# alternating rounds. Writes bench/results/<UTC time>/results.jsonl and prints a summary
# (medians over rounds). Knobs: ROUNDS (3), SCALE (1.0), CPUS (2: logical CPUs given to Ray's
# node and to the gpunet worker alike), CLIENTS (4), DURABILITY (process|immediate|none), SKIP_RAY (set: gpunet only).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-1}
CPUS=${CPUS:-2}
CLIENTS=${CLIENTS:-4}
DURABILITY=${DURABILITY:-process}

# Ray from PyPI in a virtual environment (TOOLCHAIN.md: Ray 2.60 wheels for CPython 3.11).
PY=${PYTHON:-python3.11}
[ -x bench/.venv/bin/python ] || "$PY" -m venv bench/.venv
bench/.venv/bin/python -c 'import ray' 2>/dev/null || bench/.venv/bin/pip install -q "ray==2.60.*"

# An optimised gpunet without fat LTO (build time), in its own target dir.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
CARGO_TARGET_DIR=target/bench cargo build --release -p gpunet-cli --locked
BIN=target/bench/release/gpunet

OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
USER_PUB=$($BIN key generate --out "$OUT/user.json")
WORKER_PUB=$($BIN key generate --out "$OUT/worker.json")
$BIN key generate --out "$OUT/keeper.json" >/dev/null
PORT=$(bench/.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

run_gpunet() {
  local r=$1
  cat > "$OUT/keeper.toml" <<TOML
listen = "127.0.0.1:$PORT"
metrics_listen = ""
db_path = "$OUT/keeper-$r.redb"
durability = "$DURABILITY"
[[providers]]
id = "bench-provider"
worker_keys = ["$WORKER_PUB"]
[[leases]]
id = "bench-lease"
user = "$USER_PUB"
provider = "bench-provider"
gpus = 1
TOML
  GPUNET_LOG=warn $BIN keeper run --offline --config "$OUT/keeper.toml" --keypair "$OUT/keeper.json" & local kp=$!
  GPUNET_LOG=warn $BIN worker run --keeper "$URL" --provider bench-provider --keypair "$OUT/worker.json" \
      --gpus 1 --cpus "$CPUS" --work-dir "$OUT/work" & local wp=$!
  sleep 1
  GPUNET_LOG=warn $BIN bench --keeper "$URL" --lease bench-lease --keypair "$OUT/user.json" \
      --scale "$SCALE" --clients "$CLIENTS" | sed "s/^{/{\"round\":$r,/" >> "$OUT/results.jsonl"
  kill -TERM $wp $kp; wait $wp $kp || true
}

run_ray() {
  local r=$1
  bench/.venv/bin/python bench/ray_bench.py --cpus "$CPUS" --scale "$SCALE" --clients "$CLIENTS" \
      | sed "s/^{/{\"round\":$r,/" >> "$OUT/results.jsonl"
}

for r in $(seq 1 "$ROUNDS"); do
  if [ -z "${SKIP_RAY:-}" ]; then echo "round $r: ray" >&2; run_ray "$r"; fi
  echo "round $r: gpunet" >&2; run_gpunet "$r"
done

{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u)"
  echo "rustc: $(rustc --version); ray: $(bench/.venv/bin/python -c 'import ray; print(ray.__version__)')"
  echo "gpunet: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' || echo ' + uncommitted changes'); durability $DURABILITY; $ROUNDS rounds, scale $SCALE, $CPUS CPUs"
  bench/.venv/bin/python bench/summarize.py "$OUT/results.jsonl"
} | tee "$OUT/summary.txt"
