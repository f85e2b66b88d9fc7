#!/usr/bin/env bash
# Backup and restore rates. A 3-node loopback cluster (`dynamo-node local`,
# release build) is loaded with KEYS keys of VALUE_SIZE bytes by
# dynamo-bench, then backed up by `dynamoctl backup create` to a real S3
# server (SeaweedFS `weed mini` on loopback, built from its Go module by
# testbed/build-go-tool.sh, path-style requests) and to a directory; each
# backup is then restored into a fresh 3-node cluster. Prints, per target
# and direction, records and MiB (record bytes before compression, every
# replica's copy) per second, and the bytes stored; the JSON reports go to
# OUT (default a new temporary directory).
# Usage: scripts/bench-backup.sh [KEYS]   (default 200000; VALUE_SIZE 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-200000}
value_size=${VALUE_SIZE:-1024}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
weed="$(testbed/build-go-tool.sh testbed/seaweedfs)/weed"
cargo build --release -p dynamo-node -p dynamo-ctl -p dynamo-bench >&2
node=target/release/dynamo-node
ctl=target/release/dynamoctl
bench=target/release/dynamo-bench
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work" /tmp/seaweedfs-*-grpc-*.sock' EXIT

# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

# start_s3: weed mini on free loopback ports with one identity and the
# bucket "backups"; sets s3_endpoint.
start_s3() {
    local p
    read -r -a p <<<"$(testbed/free_ports.py 10)"
    mkdir -p "$work/s3/data" "$work/s3/logs"
    cat >"$work/s3/s3.json" <<'JSON'
{"identities": [{"name": "bench", "credentials": [{"accessKey": "BENCHACCESSKEY", "secretKey": "bench-secret-key"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
    (cd "$work/s3" && exec "$weed" -logdir=logs -alsologtostderr=false -stderrthreshold=ERROR mini \
        -dir=data -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="${p[0]}" -master.port.grpc="${p[1]}" \
        -master.telemetry=false -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
        -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -filer.localSocket=filer.sock \
        -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.localSocket=s3.sock -s3.config=s3.json -s3.autoCreateBucket=false -webdav=false \
        -admin.ui=false -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" -admin.port.legacy=0 \
        -bucket=backups) &
    pids+=($!)
    s3_endpoint="http://127.0.0.1:${p[6]}"
    until curl -fs "$s3_endpoint/healthz" >/dev/null &&
        curl -fs "http://127.0.0.1:${p[4]}/buckets/backups/" >/dev/null; do sleep 0.5; done
}

# cluster BASE_PORT NAME: a fresh local cluster; its pid goes to pids.
cluster() {
    start_local_cluster "$node" "$1" "$work/$2" 2> >(sed -u "s/^/$2 | /" >&2)
    pids+=("$cluster")
}

start_s3
export AWS_ACCESS_KEY_ID=BENCHACCESSKEY AWS_SECRET_ACCESS_KEY=bench-secret-key
# target_args TARGET: sets args to dynamoctl's options for s3 or dir.
target_args() {
    case $1 in
    s3) args=(--target s3://backups/bench --s3-endpoint "$s3_endpoint") ;;
    dir) args=(--target "$work/backups") ;;
    esac
}

cluster 7701 source
echo "== loading $keys keys of $value_size bytes" >&2
$bench run "${cluster_urls[@]}" --keys "$keys" --value-size "$value_size" --concurrency 32 \
    --workload write --prefill --ops 1 -o json >/dev/null
for target in s3 dir; do
    target_args "$target"
    echo "== backup to $target" >&2
    $ctl --node 127.0.0.1:7701 backup create --id "bench-$target" "${args[@]}" -o json \
        >"$out/backup-$target.json"
done
restore_port=7801
for target in s3 dir; do
    target_args "$target"
    cluster "$restore_port" "restored-$target"
    echo "== restore from $target" >&2
    $ctl --node "127.0.0.1:$restore_port" backup restore "bench-$target" "${args[@]}" -o json \
        >"$out/restore-$target.json"
    restore_port=$((restore_port + 100))
done

echo "== JSON reports in $out" >&2
python3 - "$out" "$keys" "$value_size" <<'PY'
import json, pathlib, sys
out, keys, size = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print(f"{keys} keys of {size} B on 3 replicas (every replica's copy counted)")
print(f"{'target':<8} {'step':<8} {'records':>9} {'MiB':>8} {'stored MiB':>10} {'seconds':>8} "
      f"{'records/s':>10} {'MiB/s':>7}")
for target in ("s3", "dir"):
    for step in ("backup", "restore"):
        r = json.loads((out / f"{step}-{target}.json").read_text())
        print(f"{target:<8} {step:<8} {r['records']:>9} {r['raw_bytes'] / 2**20:>8.1f} "
              f"{r['stored_bytes'] / 2**20:>10.1f} {r['seconds']:>8.1f} "
              f"{r['records_per_sec']:>10.0f} {r['mib_per_sec']:>7.1f}")
PY
