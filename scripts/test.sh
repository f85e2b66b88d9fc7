#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: installs what it needs,
# checks formatting and lints, then runs every test: Rust first (the Rust
# client among them), the Python and Go clients against live clusters,
# fuzzing, the HTTP API against its OpenAPI description, the observability
# tools, backups to a real S3 server, then the Kubernetes packaging (chart, CRDs, manifests; no cluster needed), the
# operator on a real Kubernetes control plane built from published Go
# modules (testbed/, tests/controlplane/; needs Go and root) and the Docker
# cluster test (skipped with a message when no Docker engine answers).
set -euo pipefail
cd "$(dirname "$0")/.."
# openssl makes the control plane's certificates; util-linux (unshare,
# setpriv, nsenter) runs pods in mount namespaces; python3-venv the test venvs.
# chromium drives the status page's test (tests/observability);
# libnss-myhostname resolves BUCKET.localhost for the S3 virtual-host test.
scripts/install-deps.sh openssl util-linux python3-venv chromium libnss-myhostname

# What the later tests run and this clone does not build with cargo test
# (the control plane, Prometheus, Jaeger and SeaweedFS from their Go
# modules, the
# previous release's dynamo-node) builds at nice 19 in the background
# while the Rust checks run, on the CPU those leave idle (the fault tests
# mostly wait); each is a no-op once cached.
# step TEXT: a step's heading, with the time since the run began, so a
# log shows where the minutes went.
step() {
    printf '== [%02d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$1"
}
bg_logs=$(mktemp -d)
bg_builds=()
# A failing step ends the run: stop the builds still going with it (each
# runs in a session of its own, so its go, cargo and compiler processes too).
stop_bg_builds() {
    local entry
    for entry in "${bg_builds[@]}"; do
        kill -- "-${entry#*:}" 2>/dev/null || true
    done
}
trap stop_bg_builds EXIT
# start_bg_build NAME COMMAND...: its stdout goes to $bg_logs/NAME.out.
start_bg_build() {
    local name=$1
    shift
    setsid "$@" >"$bg_logs/$name.out" 2>"$bg_logs/$name.log" &
    bg_builds+=("$name:$!")
}
# wait_bg_build NAME: waits for that build; its log on failure.
wait_bg_build() {
    local entry
    for entry in "${bg_builds[@]}"; do
        [[ ${entry%%:*} == "$1" ]] || continue
        if ! wait "${entry#*:}"; then
            echo "building $1 failed:" >&2
            cat "$bg_logs/$1.log" >&2
            exit 1
        fi
        tail -n 3 "$bg_logs/$1.log"
    done
}
start_bg_build controlplane testbed/build.sh
start_bg_build prometheus testbed/build-go-tool.sh testbed/prometheus
start_bg_build jaeger testbed/build-go-tool.sh testbed/jaeger
start_bg_build seaweedfs testbed/build-go-tool.sh testbed/seaweedfs
start_bg_build previous-node nice -n 19 ionice -c3 scripts/build-previous-node.sh

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc (broken doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
step "cargo test (the Rust client's tests among them; those of S3 come later)"
cargo test --workspace --locked -- --skip s3
step "Client libraries: Python and Go against live clusters (clients/*/run-tests.sh)"
DYNAMO_NODE_BIN=$(cargo metadata --format-version 1 --no-deps | python3 scripts/cargo_metadata.py target-directory)/debug/dynamo-node
export DYNAMO_NODE_BIN
clients/python/run-tests.sh -q
clients/go/run-tests.sh
step "Fuzzing: every network decoder, 20 s each (scripts/fuzz.sh)"
scripts/fuzz.sh 20
step "HTTP API against docs/openapi.yaml (tests/api/run.sh, schemathesis)"
tests/api/run.sh
step "Observability: a loopback cluster seen by a real Prometheus, Jaeger and Chromium (tests/observability/run.sh)"
wait_bg_build prometheus
wait_bg_build jaeger
tests/observability/run.sh -q --durations=5
step "Backups to a real S3 server (SeaweedFS, testbed/seaweedfs): dynamoctl backup and the test server (the operator's backups run with the control plane)"
wait_bg_build seaweedfs
# The whole workspace's feature set, as above, so nothing is compiled again.
DYNAMO_WEED_BIN="$(cat "$bg_logs/seaweedfs.out")/weed"
export DYNAMO_WEED_BIN
cargo test --workspace --locked --tests s3
step "Kubernetes packaging: chart, CRDs, manifests, scripts (scripts/k8s-tests.sh)"
scripts/k8s-tests.sh
step "Real Kubernetes control plane: its build (cached per machine; testbed/build.sh)"
wait_bg_build controlplane
step "gofmt, go vet (testbed/controlplane)"
unformatted=$(gofmt -l testbed)
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
(cd testbed/controlplane && go vet ./...)
step "The previous release's dynamo-node, for the mixed-version test (cached; scripts/build-previous-node.sh)"
wait_bg_build previous-node
DYNAMO_CP_PREVIOUS_NODE=$(cat "$bg_logs/previous-node.out")
export DYNAMO_CP_PREVIOUS_NODE
step "The operator on the real control plane (tests/controlplane/run.sh)"
tests/controlplane/run.sh -q --durations=10
step "Docker: three node containers, a stopped node and a partition (tests/docker/cluster.py)"
tests/docker/cluster.py
step "done"
