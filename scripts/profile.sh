#!/usr/bin/env bash
# Profiles a 3-node loopback cluster under load and draws a flamegraph:
# starts a fresh cluster (N=3, R=2, W=2), prefills 100,000 keys of 1 KiB,
# runs WORKLOAD with 32 connections, samples the three node processes with
# `perf record --call-graph dwarf` (release binaries keep their debug info,
# so Rust frames unwind without frame pointers) and renders the samples with
# inferno. Installs perf (apt: linux-perf) and inferno (cargo) if missing.
# Prints the hottest functions and the nodes' CPU by component
# (scripts/profile_components.py); the SVG opens in any browser.
# Usage: scripts/profile.sh [WORKLOAD] [SECONDS] [RATE]   (default: read 10, max)
#   WORKLOAD  write | read | mixed | rmw, as for dynamo-bench
#   RATE      fixed requests per second (open loop) instead of the maximum
# Output: target/profile/WORKLOAD.svg and target/profile/WORKLOAD.folded
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
workload=${1:-read}
secs=${2:-10}
rate=${3:-}
tools=()
command -v perf >/dev/null 2>&1 || tools+=(linux-perf)
scripts/install-deps.sh "${tools[@]}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v inferno-flamegraph >/dev/null 2>&1 || cargo install --locked inferno >&2
cargo build --release -p dynamo-node -p dynamo-bench >&2
node=target/release/dynamo-node
bench=target/release/dynamo-bench
out=target/profile
mkdir -p "$out"
data=$(mktemp -d)
trap 'kill -INT "$cluster" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT

start_local_cluster "$node" 7201 "$data"
urls=("${cluster_urls[@]}")
load=(--keys 100000 --value-size 1024 --concurrency 32)
echo "== prefilling 100,000 keys" >&2
$bench run "${urls[@]}" "${load[@]}" --workload write --prefill --ops 1 >/dev/null

echo "== $workload for $((secs + 4)) s, sampling the nodes for the middle $secs s" >&2
$bench run "${urls[@]}" "${load[@]}" --workload "$workload" ${rate:+--rate "$rate"} \
    --warmup 2s --duration "$((secs + 2))s" > "$out/$workload.report" &
load_pid=$!
sleep 2
pids=$(pgrep -d, -f "dynamo-node serve.*--data-dir $data")
perf record -F 199 --call-graph dwarf,16384 -p "$pids" -o "$out/perf.data" -- sleep "$secs" 2>/dev/null
wait "$load_pid"
cat "$out/$workload.report" >&2

perf script -i "$out/perf.data" 2>/dev/null | inferno-collapse-perf > "$out/$workload.folded"
inferno-flamegraph --title "dynamo-node, $workload${rate:+ at $rate/s}" < "$out/$workload.folded" > "$out/$workload.svg"
echo "== hottest functions (self time, all three nodes)"
perf report -i "$out/perf.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | head -25
echo "== node CPU by component (each sample once, by its innermost known frame)"
/usr/bin/python3 scripts/profile_components.py "$out/$workload.folded"
echo "== flamegraph: $out/$workload.svg"
