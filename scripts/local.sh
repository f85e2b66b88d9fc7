#!/usr/bin/env bash
# Starts a local multi-node cluster on loopback (3 nodes by default).
# Extra arguments go to `dynamo-node local`, e.g. --nodes 5 --base-port 8001.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --release --bin dynamo-node -- local "$@"
