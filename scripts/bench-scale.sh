#!/usr/bin/env bash
# How cost grows with the data. For each key count (default 100,000,
# 1,000,000 and 10,000,000) a fresh 3-node loopback cluster (N=3, R=2, W=2,
# one request thread per node) is loaded with that many keys of VALUE_SIZE
# bytes and measured:
#   1. writes, then reads, at maximum throughput (32 connections, SECONDS
#      each, keys chosen uniformly);
#   2. each node's RSS and data directory size, per key;
#   3. rebuild: node 3 stopped, its data directory deleted, restarted: the
#      time until it holds every partition it owns, and the keys and bytes
#      it received;
#   4. join: a fourth node added: the time until every member holds every
#      partition of the new ring, and the keys and bytes moved.
# Partition streaming is not throttled for 3 and 4
# (--transfer-keys-per-sec TRANSFER_RATE, default 1,000,000): the figures
# are what the machine allows. A node's default, 5,000 keys a second,
# bounds a transfer at keys / 5,000 seconds.
# VALUE_SIZE defaults to 256 bytes: 10 M keys of 1 KiB on three replicas
# would need about 30 GB of disk.
# Writes one JSON summary per key count to OUT (default a new temporary
# directory) with the bench tool's reports beside it, then prints the
# tables and draws the plots (scripts/bench_scale_report.py OUT IMAGES).
# Usage: scripts/bench-scale.sh [SECONDS] [KEYS ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh python3-matplotlib
secs=${1:-20}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100000 1000000 10000000)
value_size=${VALUE_SIZE:-256}
transfer_rate=${TRANSFER_RATE:-1000000}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
images=${IMAGES:-docs/images}
cargo build --release -p dynamo-node -p dynamo-bench >&2
node=target/release/dynamo-node
bench=target/release/dynamo-bench
data=$(mktemp -d)
base=7401
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT

address() { echo "127.0.0.1:$((base + $1 - 1))"; }
peers=()
for i in 1 2 3; do peers+=(--peer "node$i=$(address "$i"),zone-$i"); done

# serve I STATE [FLAGS...]: starts node I in the background; its pid goes
# to pids[I].
serve() {
    local i=$1 state=$2
    shift 2
    "$node" serve --node-id "node$i" --listen "$(address "$i")" --zone "zone-$i" \
        --data-dir "$data/node$i" "${peers[@]}" --worker-threads 1 \
        --transfer-keys-per-sec "$transfer_rate" --initial-cluster-state "$state" "$@" \
        2> >(sed -u "s/^/node$i | /" >&2) &
    pids[i]=$!
}

ready() { until curl -fs "http://$(address "$1")/readyz" >/dev/null; do sleep 0.2; done; }

now() { date +%s.%N; }

# since STARTED: seconds from STARTED (a `now`) until now.
since() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$(now)"; }

# transfers I: node I's transfer report.
transfers() { curl -fs "http://$(address "$1")/v1/admin/transfers"; }

# settled EPOCH I...: whether every node I answers, reporting EPOCH with
# nothing pending.
settled() {
    local epoch=$1 i report
    shift
    for i in "$@"; do
        report=$(transfers "$i") || return 1
        python3 -c '
import json, sys
r = json.loads(sys.argv[2])
sys.exit(0 if r["epoch"] == int(sys.argv[1]) and r["pending"] == 0 else 1)' "$epoch" "$report" || return 1
    done
}

# moved I...: {"keys": .., "bytes": ..} received by nodes I in their epoch.
moved() {
    local i
    for i in "$@"; do transfers "$i"; echo; done | python3 -c '
import json, sys
reports = [json.loads(line) for line in sys.stdin if line.strip()]
parts = [p for r in reports for p in r["partitions"]]
print(json.dumps({"keys": sum(p["keys"] for p in parts), "bytes": sum(p["bytes"] for p in parts)}))'
}

epoch_of() { transfers "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["epoch"])'; }

# footprint: [{"node", "rss_kib", "disk_bytes"}] of the running nodes 1-3.
footprint() {
    local i sep=
    printf '['
    for i in 1 2 3; do
        printf '%s{"node": %d, "rss_kib": %d, "disk_bytes": %d}' "$sep" "$i" \
            "$(ps -o rss= -p "${pids[i]}")" "$(du -sb "$data/node$i" | cut -f1)"
        sep=", "
    done
    printf ']'
}

stop_nodes() {
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
}

measure() {
    local keys=$1 urls=() monitor=() i
    rm -rf "${data:?}"/*
    for i in 1 2 3; do serve "$i" new; done
    for i in 1 2 3; do ready "$i"; urls+=(--url "http://$(address "$i")"); done
    for i in 1 2 3; do monitor+=(--monitor-pid "${pids[i]}"); done
    local load=(--keys "$keys" --value-size "$value_size" --concurrency 32 -o json)
    echo "== $keys keys of $value_size bytes: loading" >&2
    local started
    started=$(now)
    $bench run "${urls[@]}" "${load[@]}" --workload write --prefill --ops 1 > /dev/null
    local load_secs
    load_secs=$(since "$started")
    for workload in write read; do
        echo "== $keys keys: $workload, max throughput" >&2
        $bench run "${urls[@]}" "${load[@]}" --workload "$workload" --duration "${secs}s" \
            "${monitor[@]}" > "$out/scale-$keys-$workload.json"
    done
    local sizes
    sizes=$(footprint)

    echo "== $keys keys: rebuilding node 3" >&2
    local epoch
    epoch=$(epoch_of 1)
    kill -TERM "${pids[3]}"
    wait "${pids[3]}" || true
    rm -rf "$data/node3"
    started=$(now)
    serve 3 existing
    until settled "$epoch" 3 && [ "$(moved 3)" != '{"keys": 0, "bytes": 0}' ]; do sleep 0.5; done
    local rebuild_secs rebuild_moved
    rebuild_secs=$(since "$started")
    rebuild_moved=$(moved 3)

    echo "== $keys keys: adding node 4" >&2
    serve 4 existing --join --peer "node4=$(address 4),zone-4"
    ready 4
    started=$(now)
    epoch=$(curl -fs -X POST -H 'content-type: application/json' \
        -d "{\"add\": [{\"id\": \"node4\", \"zone\": \"zone-4\", \"address\": \"$(address 4)\"}]}" \
        "http://$(address 1)/v1/admin/members" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["epoch"])')
    until settled "$epoch" 1 2 3 4; do sleep 0.5; done
    local join_secs join_moved
    join_secs=$(since "$started")
    join_moved=$(moved 1 2 3 4)

    stop_nodes
    cat > "$out/scale-$keys.json" <<EOF
{"keys": $keys, "value_size": $value_size, "transfer_keys_per_sec": $transfer_rate,
 "load_secs": $load_secs, "nodes": $sizes,
 "rebuild": {"secs": $rebuild_secs, "moved": $rebuild_moved},
 "join": {"secs": $join_secs, "moved": $join_moved}}
EOF
}

for keys in "${counts[@]}"; do measure "$keys"; done
echo "== JSON reports kept in $out" >&2
/usr/bin/python3 scripts/bench_scale_report.py "$out" "$images"
