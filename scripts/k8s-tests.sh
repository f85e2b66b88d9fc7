#!/usr/bin/env bash
# Checks of the Kubernetes packaging, no cluster needed: the Helm chart (strict
# lint, rendering with several value sets), crds/ (structural schemas, the
# chart's copy), manifests/ (generated from the chart, never stale), every
# object against Kubernetes' schemas, RBAC against the operator's contract,
# and the shell scripts (bash -n, shellcheck).
#
# Creates .venv-tests/ with the pinned tools of tests/k8s/requirements.txt
# (again whenever that file changes) and installs shellcheck with apt if it is
# missing. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-tests
requirements=tests/k8s/requirements.txt
python="${PYTHON:-python3}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

apt_install() {
    echo "installing $*" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi
command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck

# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
ensure_venv "$venv" "$requirements"

exec "$venv/bin/python" -m pytest tests/k8s -q -p no:cacheprovider "$@"
