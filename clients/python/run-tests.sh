#!/usr/bin/env bash
# Runs the Python client's checks and tests (clients/python/): ruff check and
# ruff format --check, then pytest against live three-node clusters of
# dynamo-node processes on loopback, which the tests start themselves.
#
# Creates clients/python/.venv from the pinned requirements-test.txt with
# `pip install --no-deps` (again whenever that file changes), as the other
# Python test scripts do; the tests import the client from src/ (pytest's
# pythonpath setting), so nothing is built or installed. It does NOT build the
# node: the caller does (cargo build -p dynamo-node), and $DYNAMO_NODE_BIN
# (default target/debug/dynamo-node of the repository) must exist. Extra
# arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

export DYNAMO_NODE_BIN=${DYNAMO_NODE_BIN:-$repo/target/debug/dynamo-node}
case $DYNAMO_NODE_BIN in
/*) ;;
*) DYNAMO_NODE_BIN=$repo/$DYNAMO_NODE_BIN ;;
esac
if [ ! -x "$DYNAMO_NODE_BIN" ]; then
    echo "clients/python/run-tests.sh: no node binary at $DYNAMO_NODE_BIN;" \
        "build it first (cargo build -p dynamo-node) or set DYNAMO_NODE_BIN" >&2
    exit 1
fi

venv=$here/.venv
# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
ensure_venv "$venv" "$here/requirements-test.txt"

echo "== ruff check, ruff format --check (clients/python)" >&2
"$venv/bin/ruff" check "$here"
"$venv/bin/ruff" format --check "$here"

echo "== pytest (clients/python/tests)" >&2
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
