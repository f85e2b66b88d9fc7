#!/usr/bin/env bash
# Runs the control-plane tests (tests/controlplane/README.md): a real
# Kubernetes control plane (testbed/), the kubelet stand-in and the operator
# installed from the chart. Needs root (mount namespaces, /etc/hosts).
#
# Creates tests/controlplane/.venv from the pinned requirements.txt with
# `pip install --no-deps` (again whenever that file changes), as
# scripts/k8s-tests.sh does. Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

venv=$here/.venv
# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
ensure_venv "$venv" "$here/requirements.txt"

exec "$venv/bin/python" -m pytest tests/controlplane "$@"
