#!/usr/bin/env bash
# Checks and tests the Go client: gofmt, go vet, then go test ./... against
# live three-node clusters the tests start from $DYNAMO_NODE_BIN (default:
# target/debug/dynamo-node of this repository; this script never builds it).
# Extra arguments go to `go test`, e.g. ./run-tests.sh -run TestTLS -v
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

DYNAMO_NODE_BIN="${DYNAMO_NODE_BIN:-$repo/target/debug/dynamo-node}"
if [[ "$DYNAMO_NODE_BIN" != /* ]]; then
    DYNAMO_NODE_BIN="$PWD/$DYNAMO_NODE_BIN" # relative to where the script was called from
fi
export DYNAMO_NODE_BIN
cd "$here"
if [[ ! -x "$DYNAMO_NODE_BIN" ]]; then
    echo "run-tests.sh: the node binary $DYNAMO_NODE_BIN is missing or not executable." >&2
    echo "  Build it first (cargo build -p dynamo-node in $repo) or set DYNAMO_NODE_BIN." >&2
    exit 1
fi

unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
    echo "run-tests.sh: gofmt would change:" >&2
    echo "$unformatted" >&2
    exit 1
fi
go vet ./...
go test -count=1 "$@" ./...
