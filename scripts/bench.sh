#!/usr/bin/env bash
# Reproduces the tables in docs/benchmarks.md on this machine:
#   1. the one-hop HTTP baseline (dynamo-bench baseline), writes and reads;
#   2. a fresh 3-node loopback cluster (N=3, R=2, W=2), 100k keys of 1 KiB,
#      32 connections: 100% writes, 100% reads, 50/50, each at max
#      throughput and then open-loop at half that rate;
#   3. a slow replica: 50/50 open loop at half the mixed maximum sent to
#      nodes 1 and 2 only, first with node 3 healthy, then the same window
#      with node 3 stopped (SIGSTOP) from its first moment to its last;
#   4. node memory after loading 1,000,000 keys of 1 KiB;
#   5. what RocksDB alone costs per operation (scripts/storage-floor.sh), and
#      from it the CPU the throughput targets leave for everything else;
#   6. how cost grows with the data (scripts/bench-scale.sh: 100k, 1M and
#      10M keys, or the counts in SCALE_KEYS; SCALE_KEYS=none skips it).
# The tables are printed, and drawn as PNG plots into IMAGES (default
# docs/images).
# Usage: scripts/bench.sh [SECONDS_PER_RUN] [--fsync]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
scripts/install-deps.sh python3-matplotlib
secs=${1:-20}
fsync=false
[ "${2:-}" = "--fsync" ] && fsync=true
cargo build --release -p dynamo-node -p dynamo-bench >&2
node=target/release/dynamo-node
bench=target/release/dynamo-bench
out=$(mktemp -d)
data=$(mktemp -d)
trap 'kill -INT "$cluster" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT

common=(--keys 100000 --value-size 1024 --concurrency 32 --duration "${secs}s" -o json)

echo "== baseline (one HTTP hop)" >&2
half() { python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['ops_per_sec'] / 2))" "$1"; }
for workload in write read; do
    $bench baseline --workload "$workload" "${common[@]}" > "$out/baseline-$workload.json"
    # The same hop at half its own maximum: the tail this machine gives any
    # server at that load, for comparison with the cluster's half-load tail.
    rate=$(half "$out/baseline-$workload.json")
    $bench baseline --workload "$workload" --rate "$rate" "${common[@]}" > "$out/baseline-$workload-half.json"
done

echo "== RocksDB alone (db_bench with the node's options)" >&2
scripts/storage-floor.sh "$secs" > "$out/storage.json"

echo "== 3-node cluster, data in $data, fsync=$fsync" >&2
DYNAMO_FSYNC=$fsync start_local_cluster "$node" 7101 "$data"
urls=("${cluster_urls[@]}")
pids=()
for pid in $(pgrep -f "dynamo-node serve.*--data-dir $data"); do pids+=(--monitor-pid "$pid"); done

first=--prefill
for workload in write read mixed; do
    echo "== $workload, max throughput" >&2
    $bench run "${urls[@]}" --workload "$workload" $first "${common[@]}" "${pids[@]}" > "$out/$workload-max.json"
    first=
    rate=$(half "$out/$workload-max.json")
    echo "== $workload, open loop at $rate ops/s" >&2
    $bench run "${urls[@]}" --workload "$workload" --rate "$rate" "${common[@]}" "${pids[@]}" > "$out/$workload-half.json"
done

rate=$(half "$out/mixed-max.json")
two=("${urls[@]:0:4}") # --url of nodes 1 and 2
third=$(pgrep -f "dynamo-node serve.*--listen 127.0.0.1:7103")
echo "== a slow replica: mixed at $rate ops/s on nodes 1 and 2, node 3 healthy" >&2
$bench run "${two[@]}" --workload mixed --rate "$rate" "${common[@]}" "${pids[@]}" > "$out/slow-healthy.json"
echo "== the same with node 3 (pid $third) stopped for the whole run" >&2
kill -STOP "$third"
$bench run "${two[@]}" --workload mixed --rate "$rate" "${common[@]}" "${pids[@]}" > "$out/slow-paused.json" \
    || { kill -CONT "$third"; exit 1; }
kill -CONT "$third"
echo "== loading 1,000,000 keys of 1 KiB" >&2
$bench run "${urls[@]}" --workload read --keys 1000000 --prefill --value-size 1024 --concurrency 32 \
    --duration 5s -o json "${pids[@]}" > "$out/million.json"

images=${IMAGES:-docs/images}
echo "== JSON reports kept in $out (scripts/bench_report.py $out $fsync prints the tables again)" >&2
/usr/bin/python3 scripts/bench_report.py "$out" "$fsync" --images "$images"

kill -INT "$cluster"
wait "$cluster" || true
scale_keys=${SCALE_KEYS:-100000 1000000 10000000}
if [ "$scale_keys" != none ]; then
    # shellcheck disable=SC2086 # a list of key counts
    OUT="$out" IMAGES="$images" scripts/bench-scale.sh "$secs" $scale_keys
fi
