#!/usr/bin/env bash
# gpunet's initialisation on any cluster, by URL — what `gpunet localnet` does on a fresh chain
# (the same code: `gpunet config init` is gpunet_sdk::setup::{create_mint, init_config}).
#
# Usage: migrations/init.sh URL ADMIN_KEYPAIR [--mint MINT] [--airdrop SOL]
#   URL            the cluster's JSON-RPC URL (http://127.0.0.1:8899, a devnet URL, …)
#   ADMIN_KEYPAIR  becomes the config's admin; on a real cluster it must be the program's
#                  upgrade authority (the program checks it)
#   --mint MINT    the stake/payment token (default: a new mint with the admin as authority)
#   --airdrop SOL  first ask the cluster's faucet for SOL (localnets and devnet only)
# Env: GPUNET (the gpunet binary; default `gpunet` on the PATH).
# Running it again on an initialised cluster changes nothing and says so.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '5,12p' "$0" >&2
  exit 2
fi
URL=$1
KEYPAIR=$2
shift 2
MINT=()
AIRDROP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mint) MINT=(--mint "$2"); shift 2 ;;
    --airdrop) AIRDROP=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
GPUNET=${GPUNET:-gpunet}
g() { "$GPUNET" --url "$URL" --keypair "$KEYPAIR" "$@"; }

if g config show >/dev/null 2>&1; then
  echo "gpunet is already initialised on $URL:"
  g config show
  exit 0
fi
ADMIN=$("$GPUNET" key pubkey "$KEYPAIR")
if [ "$AIRDROP" != 0 ]; then
  echo "airdrop of $AIRDROP SOL to $ADMIN"
  g faucet "$ADMIN" --sol "$AIRDROP"
fi
echo "initialising gpunet on $URL (admin $ADMIN)"
g config init "${MINT[@]}"
g config show
