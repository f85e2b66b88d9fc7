#!/usr/bin/env bash
# Runs the observability tests (tests/observability/): a three-node cluster
# of dynamo-node processes on loopback, looked at by real tools (Prometheus,
# Jaeger, headless Chromium) that the tests build or install themselves.
#
# Creates tests/observability/.venv from the pinned requirements.txt with
# `pip install --no-deps` (again whenever that file changes), as the other
# Python test scripts do. Extra arguments go to pytest. Artefacts the tests
# keep (screenshots) go to $DYNAMO_ARTIFACTS (default target/artifacts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

# Debian's Chromium for test_status_page.py (Playwright drives it; it never
# downloads a browser of its own).
scripts/install-deps.sh chromium

venv=$here/.venv
# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
ensure_venv "$venv" "$here/requirements.txt"

echo "== cargo build -p dynamo-node" >&2
nice cargo build --locked -p dynamo-node
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 scripts/cargo_metadata.py target-directory)
export DYNAMO_NODE_BIN=${DYNAMO_NODE_BIN:-$target_dir/debug/dynamo-node}
export DYNAMO_ARTIFACTS=${DYNAMO_ARTIFACTS:-$target_dir/artifacts}

exec "$venv/bin/python" -m pytest tests/observability "$@"
