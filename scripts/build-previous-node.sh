#!/usr/bin/env bash
# Builds dynamo-node as the previous release (the pinned commit below, the
# last one before the data format and the node-to-node protocol carried
# versions) for the mixed-version test (tests/controlplane/test_upgrades.py),
# and prints the binary's path as the only line on stdout.
#
#   scripts/build-previous-node.sh
#
# The source (`git archive` of the commit) and its own target directory
# live in ${XDG_CACHE_HOME:-$HOME/.cache}/dynamo/previous-node/<commit>/, so
# only the first run builds; later ones print the path at once. A shallow
# clone is unshallowed to find the commit; without it the script fails.
set -euo pipefail

COMMIT=9a6699b45ab11d7e941f8f5e7289d976f752fb98
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dynamo/previous-node/$COMMIT
BINARY=$CACHE/target/debug/dynamo-node

if [ -x "$BINARY" ]; then
    echo "$BINARY"
    exit 0
fi

has_commit() {
    git -C "$ROOT" cat-file -e "$COMMIT^{commit}" 2>/dev/null
}

if ! has_commit; then
    git -C "$ROOT" fetch --quiet --unshallow >&2 2>/dev/null || true
fi
if ! has_commit; then
    echo "build-previous-node.sh: commit $COMMIT (the previous release of dynamo-node)" \
        "is not in this clone, even after git fetch --unshallow: fetch it" \
        "(git fetch origin $COMMIT) and run again" >&2
    exit 1
fi

echo "build-previous-node.sh: building dynamo-node at ${COMMIT:0:7} in $CACHE (once)" >&2
rm -rf "$CACHE/src"
mkdir -p "$CACHE/src"
git -C "$ROOT" archive "$COMMIT" | tar -x -C "$CACHE/src"
(cd "$CACHE/src" && CARGO_TARGET_DIR="$CACHE/target" cargo build -p dynamo-node --locked >&2)
echo "$BINARY"
