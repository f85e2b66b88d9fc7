# shellcheck shell=bash
# Shared by the scripts that install Debian packages: sourced, not run.

# as_root COMMAND [ARG ...]
# Runs COMMAND directly when this is root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# apt_install PACKAGE ...
# Installs the PACKAGEs with apt-get, quietly and without questions. The
# package lists are updated first, once per script run.
apt_install() {
    echo "installing $*" >&2
    if [ -z "${apt_lists_updated:-}" ]; then
        as_root apt-get update -qq
        apt_lists_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# apt_install_missing PACKAGE ...
# apt_install the PACKAGEs dpkg does not know as installed; nothing when
# every one is.
apt_install_missing() {
    local pkg missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}
