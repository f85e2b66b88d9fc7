#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: installs what it needs,
# checks formatting and lints, then runs every test: Rust first, then the
# Kubernetes packaging (chart, CRDs, manifests; no cluster needed), the
# operator on a real Kubernetes control plane built from published Go
# modules (testbed/, tests/controlplane/; needs Go and root) and the Docker
# cluster test (skipped with a message when no Docker engine answers).
set -euo pipefail
cd "$(dirname "$0")/.."
# openssl makes the control plane's certificates; util-linux (unshare,
# setpriv, nsenter) runs pods in mount namespaces; python3-venv the test venvs.
# chromium drives the status page's test (tests/observability).
scripts/install-deps.sh openssl util-linux python3-venv chromium

# The Go programs the later tests run (the control plane, Prometheus,
# Jaeger) build at nice 19 while the Rust checks run, on the CPU those
# leave idle (the fault tests mostly wait); each is a no-op once cached.
go_logs=$(mktemp -d)
go_builds=()
# A failing step ends the run: stop the builds still going with it (each
# runs in a session of its own, so its go and compile processes too).
stop_go_builds() {
    local entry
    for entry in "${go_builds[@]}"; do
        kill -- "-${entry#*:}" 2>/dev/null || true
    done
}
trap stop_go_builds EXIT
start_go_build() {
    local name=$1
    shift
    setsid "$@" >"$go_logs/$name.out" 2>"$go_logs/$name.log" &
    go_builds+=("$name:$!")
}
# wait_go_build NAME: waits for that build; its log on failure.
wait_go_build() {
    local entry
    for entry in "${go_builds[@]}"; do
        [[ ${entry%%:*} == "$1" ]] || continue
        if ! wait "${entry#*:}"; then
            echo "building $1 failed:" >&2
            cat "$go_logs/$1.log" >&2
            exit 1
        fi
        tail -n 3 "$go_logs/$1.log"
    done
}
start_go_build controlplane testbed/build.sh
start_go_build prometheus testbed/build-go-tool.sh testbed/prometheus
start_go_build jaeger testbed/build-go-tool.sh testbed/jaeger

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (broken doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== Fuzzing: every network decoder, 20 s each (scripts/fuzz.sh)"
scripts/fuzz.sh 20
echo "== HTTP API against docs/openapi.yaml (tests/api/run.sh, schemathesis)"
tests/api/run.sh
echo "== Observability: a loopback cluster seen by a real Prometheus, Jaeger and Chromium (tests/observability/run.sh)"
wait_go_build prometheus
wait_go_build jaeger
tests/observability/run.sh -q --durations=5
echo "== Kubernetes packaging: chart, CRDs, manifests, scripts (scripts/k8s-tests.sh)"
scripts/k8s-tests.sh
echo "== Real Kubernetes control plane: its build (cached per machine; testbed/build.sh)"
wait_go_build controlplane
echo "== gofmt, go vet (testbed/controlplane)"
unformatted=$(gofmt -l testbed)
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
(cd testbed/controlplane && go vet ./...)
echo "== The previous release's dynamo-node, for the mixed-version test (cached; scripts/build-previous-node.sh)"
DYNAMO_CP_PREVIOUS_NODE=$(scripts/build-previous-node.sh)
export DYNAMO_CP_PREVIOUS_NODE
echo "== The operator on the real control plane (tests/controlplane/run.sh)"
tests/controlplane/run.sh -q --durations=10
echo "== Docker: three node containers, a stopped node and a partition (tests/docker/cluster.py)"
tests/docker/cluster.py
