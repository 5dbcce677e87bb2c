#!/usr/bin/env bash
# On-chain costs (account sizes and rent, transaction sizes and fees, one lease's life),
# computed from the program's account types and the SDK's builders by `gpunet-costs`.
# Writes bench/results/costs-<UTC>.md. Usage: bench/costs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="bench/results/costs-$(date -u +%Y%m%dT%H%M%SZ).md"
cargo run --quiet --locked -p gpunet-tests --bin gpunet-costs > "$OUT"
echo "git $(git rev-parse --short HEAD)" >> "$OUT"
cat "$OUT"
