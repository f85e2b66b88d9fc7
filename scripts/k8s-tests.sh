#!/usr/bin/env bash
# Checks of the Kubernetes packaging, no cluster needed: the Helm chart (strict
# lint, rendering with several value sets), crds/ (structural schemas, the
# chart's copy), manifests/ (generated from the chart, never stale), every
# object against Kubernetes' schemas, RBAC against the operator's contract,
# the shell scripts (bash -n, shellcheck), and the repository's Python (ruff
# check, ruff format --check; settings in ruff.toml).
#
# Creates .venv-tests/ with the pinned tools of tests/k8s/requirements.txt
# (again whenever that file changes) and installs shellcheck with apt if it is
# missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-tests
requirements=tests/k8s/requirements.txt
python="${PYTHON:-python3}"

# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck

# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
ensure_venv "$venv" "$requirements"

# Every Python file of the repository but those in venvs (ruff.toml).
echo "== ruff check, ruff format --check" >&2
"$venv/bin/ruff" check --quiet .
"$venv/bin/ruff" format --check --quiet .

exec "$venv/bin/python" -m pytest tests/k8s -q -p no:cacheprovider "$@"
