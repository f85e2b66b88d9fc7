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
scripts/install-deps.sh openssl util-linux python3-venv

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
echo "== Observability: a loopback cluster seen by real tools (tests/observability/run.sh)"
tests/observability/run.sh -q
echo "== Kubernetes packaging: chart, CRDs, manifests, scripts (scripts/k8s-tests.sh)"
scripts/k8s-tests.sh
echo "== Real Kubernetes control plane: build it (cached per machine; testbed/build.sh)"
testbed/build.sh
echo "== gofmt, go vet (testbed/controlplane)"
unformatted=$(gofmt -l testbed)
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
(cd testbed/controlplane && go vet ./...)
echo "== The previous release's dynamo-node, for the mixed-version test (cached; scripts/build-previous-node.sh)"
DYNAMO_CP_PREVIOUS_NODE=$(scripts/build-previous-node.sh)
export DYNAMO_CP_PREVIOUS_NODE
echo "== The operator on the real control plane (tests/controlplane/run.sh)"
tests/controlplane/run.sh -q
echo "== Docker: three node containers, a stopped node and a partition (tests/docker/cluster.py)"
tests/docker/cluster.py
