#!/usr/bin/env bash
# Builds the dynamo-node and/or dynamo-operator images from binaries compiled
# on this machine: no Rust image and no registry needed. The runtime base comes
# from scripts/docker-base.sh (made once, then reused).
#
#   scripts/build-images.sh [--release] [--tag TAG] [--skip-cargo] [node] [operator]
#
# With no component, builds both. Images are named dynamo-node:TAG and
# dynamo-operator:TAG; TAG defaults to the crate version, which is also the
# chart's appVersion and so the tag the chart and manifests/ use. IMAGE_PREFIX (e.g.
# registry.example.com/team/) is put in front of both names. Binaries come
# from Cargo's target directory (CARGO_TARGET_DIR is honoured), debug profile
# unless --release. --skip-cargo uses binaries already built.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
tag=""
skip_cargo=0
components=()
while [ $# -gt 0 ]; do
    case "$1" in
        --release) profile=release ;;
        --tag) tag="$2"; shift ;;
        --skip-cargo) skip_cargo=1 ;;
        node | operator) components+=("$1") ;;
        *) echo "usage: $0 [--release] [--tag TAG] [--skip-cargo] [node] [operator]" >&2; exit 2 ;;
    esac
    shift
done
[ "${#components[@]}" -gt 0 ] || components=(node operator)

scripts/docker-base.sh

metadata=$(cargo metadata --format-version 1 --no-deps)
target_dir=$(python3 scripts/cargo_metadata.py target-directory <<<"$metadata")
if [ -z "$tag" ]; then
    tag=$(python3 scripts/cargo_metadata.py version dynamo-node <<<"$metadata")
fi
cargo_flags=(--locked)
[ "$profile" = debug ] || cargo_flags+=(--release)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

for component in "${components[@]}"; do
    binary="dynamo-$component"
    if [ "$skip_cargo" -eq 0 ]; then
        echo "== cargo build -p $binary ($profile)" >&2
        cargo build "${cargo_flags[@]}" -p "$binary"
    fi
    built="$target_dir/$profile/$binary"
    if [ ! -x "$built" ]; then
        echo "no $built: build it with cargo build -p $binary" >&2
        exit 1
    fi
    rm -rf "${context:?}"/*
    cp "$built" "$context/$binary"
    image="${IMAGE_PREFIX:-}$binary:$tag"
    echo "== docker build $image from $built" >&2
    docker build --quiet -f "images/$component-prebuilt.Dockerfile" -t "$image" "$context" >/dev/null
    echo "$image"
done
