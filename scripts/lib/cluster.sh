# shellcheck shell=bash
# Shared by the scripts that measure a local cluster: sourced, not run.

# start_local_cluster NODE_BINARY BASE_PORT DATA_DIR
# Starts `NODE_BINARY local`: three nodes on 127.0.0.1 ports BASE_PORT,
# BASE_PORT+1 and BASE_PORT+2 with their data under DATA_DIR, in the
# background, its output on stderr. Returns once every node answers
# /readyz. Sets cluster (the pid of `local`, for the caller to stop) and
# cluster_urls (--url arguments for dynamo-bench, one per node).
start_local_cluster() {
    local node=$1 base_port=$2 data=$3 port
    "$node" local --nodes 3 --base-port "$base_port" --data-dir "$data" >&2 &
    # shellcheck disable=SC2034 # for the caller
    cluster=$!
    cluster_urls=()
    for port in "$base_port" $((base_port + 1)) $((base_port + 2)); do
        until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
        cluster_urls+=(--url "http://127.0.0.1:$port")
    done
}
