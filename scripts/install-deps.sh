#!/usr/bin/env bash
# Installs what building the project needs on a Debian/Ubuntu machine:
# Debian's RocksDB (linked instead of building the bundled C++ sources) and
# libclang for the bindings, plus the rustfmt and clippy components, and
# any further Debian packages named as arguments (for the scripts that need
# a tool besides the build).
# Usage: scripts/install-deps.sh [PACKAGE ...]
set -euo pipefail

need=()
for pkg in librocksdb-dev libclang-dev "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
    done
fi
