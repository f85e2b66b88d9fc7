#!/usr/bin/env bash
# Fuzzes the client and admin HTTP API of one live node against its OpenAPI
# description, docs/openapi.yaml, with schemathesis: no 5xx but the
# documented 503 and 507, every status documented for its operation, every
# response of the documented content type, body schema and headers.
#
# Builds dynamo-node (debug), starts ONE node as a single-node ring (n = r =
# w = 1) on a free loopback port with its data in a temporary directory,
# waits for /readyz, runs schemathesis in three rounds, then stops the node.
# Exits non-zero on any failure, printing the node's log.
#
#   round 1: every operation but the two that change the ring;
#   round 2: PUT /v1/admin/ring and POST /v1/admin/members (with the
#            examples of docs/openapi.yaml, which add a member "b" and
#            publish a ring with one, so the success answers are checked
#            too). They come after round 1 because an adopted ring leaves
#            the node unable to reach a replica of part of the keys (member
#            b does not exist), and the key-value routes would answer 503
#            from then on;
#   round 3: the read-only status and admin routes again, on the ring
#            round 2 left, with a member the node cannot reach added if it
#            has none: its state, heartbeat and the partitions to receive
#            from it as /v1/status and the admin routes show them.
#
# Fuzzed rings carry addresses the node would dial; tests/api/hooks.py turns
# each into 127.0.0.1:9 so that all traffic stays on loopback.
#
# Creates tests/api/.venv from the pinned requirements.txt with `pip install
# --no-deps` (again whenever that file changes), as the other Python test
# scripts do. Extra arguments go to every schemathesis run (e.g. --seed N,
# --max-examples N). API_FUZZ_MAX_EXAMPLES (default 500) bounds the cases per
# operation and phase. After each round tests/api/summary.py prints the
# statuses each operation answered and fails if an outcome the round must
# reach (siblings, an adopted ring...) never came: then nothing checked it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

venv=$here/.venv
# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
ensure_venv "$venv" "$here/requirements.txt"

echo "== cargo build -p dynamo-node" >&2
nice cargo build --locked -p dynamo-node
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 scripts/cargo_metadata.py target-directory)
node_bin=$target_dir/debug/dynamo-node

work=$(mktemp -d)
node_pid=
stop_node() {
    if [ -n "$node_pid" ]; then
        kill "$node_pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$node_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
        node_pid=
    fi
}
cleanup() {
    local status=$?
    stop_node
    if [ "$status" -ne 0 ] && [ -f "$work/node.log" ]; then
        echo "== the node's log (last 60 lines)" >&2
        tail -n 60 "$work/node.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

port=$("$venv/bin/python" -c '
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
')
base=http://127.0.0.1:$port
# Node id "a" and 4 partitions: what the example ring of docs/openapi.yaml
# has, so that round 2 sees it adopted.
echo "== dynamo-node serve on $base (single-node ring, n=r=w=1)" >&2
RUST_LOG=${RUST_LOG:-warn} nice "$node_bin" serve \
    --node-id a --zone z1 --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --n 1 --r 1 --w 1 --partitions 4 >"$work/node.log" 2>&1 &
node_pid=$!

"$venv/bin/python" - "$base/readyz" "$node_pid" <<'EOF'
import os
import sys
import time
import urllib.request

url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                break
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the node exited before it was ready")
    if time.monotonic() > deadline:
        sys.exit(f"{url} not ready within 60 s")
    time.sleep(0.2)
EOF

# The checks that compare responses with the description (schemathesis.toml
# lets 503 and 507 through not_a_server_error).
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
fuzz() {
    local round=$1
    shift
    # Bounded twice: cases per operation and phase, and the whole round.
    SCHEMATHESIS_HOOKS=$here/hooks.py timeout --signal=INT --kill-after=10 300 \
        nice "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run docs/openapi.yaml \
        --url "$base" \
        --checks "$checks" \
        --max-examples "${API_FUZZ_MAX_EXAMPLES:-500}" \
        --seed 1 \
        --workers 1 \
        --request-timeout 10 \
        --generation-database none \
        --suppress-health-check too_slow \
        --report ndjson --report-ndjson-path "$work/$round.ndjson" \
        --no-color \
        "$@"
}
# The statuses each operation answered; fails if an --expect was never seen.
summary() {
    echo "== statuses answered" >&2
    "$venv/bin/python" "$here/summary.py" "$@"
}

echo "== schemathesis, round 1: every operation but those changing the ring" >&2
fuzz round1 --phases examples,coverage,fuzzing,stateful \
    --exclude-operation-id putRing --exclude-operation-id changeMembers "$@"
summary "$work/round1.ndjson" \
    --expect 'GET /v1/kv/{key}=200' --expect 'GET /v1/kv/{key}=300' --expect 'GET /v1/kv/{key}=404' \
    --expect 'PUT /v1/kv/{key}=204' --expect 'DELETE /v1/kv/{key}=204' --expect 'DELETE /v1/kv/{key}=404' \
    --expect 'GET /v1/status=200' --expect 'GET /v1/admin/ring=200'

echo "== schemathesis, round 2: PUT /v1/admin/ring, POST /v1/admin/members" >&2
fuzz round2 --phases examples,coverage,fuzzing \
    --include-operation-id putRing --include-operation-id changeMembers "$@"
summary "$work/round2.ndjson" \
    --expect 'PUT /v1/admin/ring=200' --expect 'PUT /v1/admin/ring=409' --expect 'POST /v1/admin/members=200'

"$venv/bin/python" - "$base" <<'EOF'
import json
import sys
import urllib.request

base = sys.argv[1]
with urllib.request.urlopen(f"{base}/v1/admin/ring", timeout=5) as response:
    ring = json.load(response)["ring"]
if all(m["id"] == "a" for m in ring["members"]):
    change = {"add": [{"id": "b", "zone": "z2", "address": "127.0.0.1:9"}]}
    request = urllib.request.Request(
        f"{base}/v1/admin/members",
        data=json.dumps(change).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=30).close()
    with urllib.request.urlopen(f"{base}/v1/admin/ring", timeout=5) as response:
        ring = json.load(response)["ring"]
members = ", ".join(m["id"] for m in ring["members"])
print(f"== the ring in use now: epoch {ring['epoch']}, members {members}", file=sys.stderr)
EOF

echo "== schemathesis, round 3: status and admin reads of the changed ring" >&2
fuzz round3 --phases examples,coverage,fuzzing \
    --include-method GET --exclude-path-regex '^/v1/kv/' "$@"
summary "$work/round3.ndjson" --expect 'GET /v1/status=200' --expect 'GET /v1/admin/transfers=200'

echo "== the node is still ready" >&2
"$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$base/readyz"
