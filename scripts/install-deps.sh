#!/usr/bin/env bash
# Installs what building the project needs on a Debian/Ubuntu machine:
# Debian's RocksDB (linked instead of building the bundled C++ sources) and
# libclang for the bindings, plus the rustfmt and clippy components, and
# any further Debian packages named as arguments (for the scripts that need
# a tool besides the build).
# Usage: scripts/install-deps.sh [PACKAGE ...]
set -euo pipefail

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
apt_install_missing librocksdb-dev libclang-dev "$@"

if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
    done
fi
