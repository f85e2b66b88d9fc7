#!/usr/bin/env bash
# Makes the runtime base image the images build on, without pulling anything:
# a minimal Debian bookworm root filesystem from debootstrap (--variant=minbase)
# with the libraries dynamo-node links at run time (Debian's librocksdb7.8 and
# what it depends on) and ca-certificates, imported with `docker import`.
#
# Machines that can pull images do not need this: the Dockerfiles default to
# debian:bookworm-slim (see docs/images.md).
#
#   scripts/docker-base.sh            build unless the tag already exists
#   scripts/docker-base.sh --force    rebuild
#
# Environment: DYNAMO_BASE_IMAGE (tag, default dynamo-runtime-base:bookworm),
# DEBIAN_MIRROR (default: the host's apt mirror, else deb.debian.org).
set -euo pipefail

tag="${DYNAMO_BASE_IMAGE:-dynamo-runtime-base:bookworm}"
force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

if [ "$force" -eq 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already exists (use --force to rebuild)" >&2
    exit 0
fi

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap

mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # The host's Debian archive mirror (a URI whose path ends in /debian), in
    # either the deb822 or the one-line sources format.
    mirror=$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

rootfs=$(mktemp -d /var/tmp/dynamo-base.XXXXXX)
cleanup() { as_root rm -rf "$rootfs"; }
trap cleanup EXIT

echo "debootstrap bookworm (minbase + librocksdb7.8, ca-certificates) from $mirror" >&2
start=$(date +%s)
as_root debootstrap --variant=minbase --include=librocksdb7.8,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    exit 1
}
rm -f "$rootfs.log"

# The library must resolve inside the image, or the node cannot start.
if ! as_root chroot "$rootfs" sh -c 'ldconfig -p | grep -q "librocksdb.so.7.8"'; then
    echo "librocksdb.so.7.8 is missing from the debootstrapped root" >&2
    exit 1
fi

# Nothing at run time needs the package caches, lists or documentation.
as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*

as_root tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap bookworm minbase with librocksdb7.8 and ca-certificates" \
    - "$tag" >/dev/null
echo "built $tag in $(($(date +%s) - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
