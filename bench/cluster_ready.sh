#!/usr/bin/env bash
# Time to a ready 3-provider cluster on the localnet: `gpunet localnet` (3 keepers and the demo
# provider, zone local/a, with its workers) plus two more providers in zones local/b and
# local/c, each with a `gpunet worker run --gpus 2` of its own. Then, ROUNDS times:
# `gpunet cluster open --gpus 6 --regions local --spread-zones` (three leases, one per zone,
# opened in one transaction, committees drawn) and polling `gpunet task cluster` until every
# lease's cluster has all its GPUs; the cluster is closed before the next round.
# Writes bench/results/cluster-ready-<UTC>/ (summary.txt, the localnet's and workers' output).
# Usage: bench/cluster_ready.sh [ROUNDS=3] — env: BIN (default target/debug/gpunet).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${BIN:-target/debug/gpunet}")
ROUNDS=${1:-3}
OUT="bench/results/cluster-ready-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
URL=http://127.0.0.1:28799
ms() { date +%s%3N; }
g() { "$BIN" --url "$URL" "$@"; }
"$BIN" localnet --keeper-port 0 --explorer-port 0 --rpc-port 28799 --ws-port 28800 \
  --dir "$TMP/w" --keypair "$TMP/admin.json" > "$OUT/localnet.txt" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do
  grep -q "demo provider" "$OUT/localnet.txt" 2>/dev/null && break
  sleep 0.2
done
sleep 2
for zone in b c; do
  k="$TMP/p-$zone.json"
  g key generate "$k" > /dev/null
  pk=$(g --keypair "$k" key pubkey)
  g --keypair "$TMP/admin.json" faucet "$pk" --sol 5 --tokens 2000000000 > /dev/null
  g --keypair "$k" provider register --region local --zone "$zone" --endpoint grpc://127.0.0.1:7000 \
    --gpu-class h100 --gpus 2 --vram 80 --price 10 > /dev/null
  g --keypair "$k" provider stake 2000000000 > /dev/null
  # The provider's wallet is also its one worker key (register's default).
  GPUNET_LOG=warn "$BIN" --url "$URL" --keypair "$k" worker run --gpus 2 --zone "local-$zone" \
    --sandbox auto > "$OUT/worker-$zone.txt" 2>&1 &
  PIDS+=($!)
done
u="$TMP/user.json"
g key generate "$u" > /dev/null
upk=$(g --keypair "$u" key pubkey)
g --keypair "$TMP/admin.json" faucet "$upk" --sol 5 --tokens 100000000 > /dev/null
for i in $(seq 1 "$ROUNDS"); do
  t0=$(ms)
  g --keypair "$u" -o json cluster open --gpus 6 --regions local --spread-zones \
    --duration 600 > "$TMP/open.json"
  t1=$(ms)
  leases=$(python3 -c "import json,sys; print(' '.join(l['lease'] for l in json.load(open('$TMP/open.json'))['leases']))")
  id=$(python3 -c "import json; print(json.load(open('$TMP/open.json'))['cluster'])")
  txs=$(python3 -c "import json; print(json.load(open('$TMP/open.json'))['transactions'])")
  for l in $leases; do
    until g --keypair "$u" -o json task --lease "$l" cluster 2>/dev/null \
      | python3 -c "import json,sys; c=json.load(sys.stdin); sys.exit(0 if c.get('gpus_ready',0)>=c.get('gpus_requested',1)>0 else 1)"; do
      sleep 0.05
    done
  done
  t2=$(ms)
  echo "round $i: cluster open (3 leases in $txs transaction(s), 3 committee draws) $((t1 - t0)) ms; its return → all 3 clusters ready $((t2 - t1)) ms; total $((t2 - t0)) ms" | tee -a "$OUT/summary.txt"
  g --keypair "$u" -o json cluster close "$id" > /dev/null
done
echo "git $(git rev-parse --short HEAD), $(nproc) cores, $BIN" | tee -a "$OUT/summary.txt"
