# shellcheck shell=bash
# Shared by the scripts that run Python tests: sourced, not run.

# ensure_venv DIR REQUIREMENTS
# Makes DIR a venv holding exactly the pinned packages of REQUIREMENTS
# (pip install --no-deps, then pip check), and makes it again whenever that
# file changes. $PYTHON (default python3) creates it.
ensure_venv() {
    local venv=$1 requirements=$2 python=${PYTHON:-python3}
    if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/requirements.txt"; then
        return 0
    fi
    echo "creating $venv from $requirements" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
    "$venv/bin/python" -m pip check >/dev/null
    cp "$requirements" "$venv/requirements.txt"
}
