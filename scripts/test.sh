#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: installs what it needs,
# checks formatting and lints, then runs every test: Rust first, then the
# Kubernetes packaging (chart, CRDs, manifests; no cluster needed) and the
# Docker cluster test (skipped with a message when no Docker engine answers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc (broken doc links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== Kubernetes packaging: chart, CRDs, manifests, scripts (scripts/k8s-tests.sh)"
scripts/k8s-tests.sh
echo "== Docker: three node containers, a stopped node and a partition (tests/docker/cluster.py)"
tests/docker/cluster.py
