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
requirements=$here/requirements.txt
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
    echo "creating $venv from $requirements" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    "$venv/bin/python" -m pip check >/dev/null
    cp "$requirements" "$venv/requirements.txt"
fi

exec "$venv/bin/python" -m pytest tests/controlplane "$@"
