#!/usr/bin/env bash
# Fuzzes every decoder that reads the network (fuzz/fuzz_targets/) with
# cargo-fuzz on stable Rust, for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
#       Builds the targets and runs each (all by default) for
#       SECONDS_PER_TARGET (default 20), starting from the committed corpus
#       fuzz/corpus/TARGET. New corpus entries go to a scratch directory
#       (fuzz/target/corpus/TARGET), never into the repository. Exits
#       non-zero if any target crashes, printing the crash input and the
#       command that reproduces it.
#   scripts/fuzz.sh --seed [TARGET ...]
#       Writes each target's seed inputs (real messages, frames, contexts,
#       rings, HTTP requests: fuzz/src/seeds.rs) into fuzz/corpus/TARGET,
#       as seed-NN beside what is there.
#   scripts/fuzz.sh --cmin [TARGET ...]
#       Merges the scratch corpus into fuzz/corpus/TARGET, keeping a small
#       set of inputs that reaches every edge the two reach.
#
# cargo-fuzz (pinned below) is installed into DYNAMO_TOOLS_DIR (default
# ~/.cache/dynamo-tools) once. Builds go to fuzz/target, with
# --sanitizer none (no nightly needed), optimized, with debug assertions.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ_DIR=$ROOT/fuzz
TOOLS_DIR=${DYNAMO_TOOLS_DIR:-$HOME/.cache/dynamo-tools}
BIN_DIR=$FUZZ_DIR/target/x86_64-unknown-linux-gnu/release
SCRATCH=$FUZZ_DIR/target/corpus
BUILD_FLAGS=(--fuzz-dir "$FUZZ_DIR" --sanitizer none --release --debug-assertions
    --codegen-units 16)

# shellcheck source=scripts/lib/apt.sh
. "$ROOT/scripts/lib/apt.sh"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Installs the pinned cargo-fuzz into TOOLS_DIR unless it is there, and
# the C++ compiler libfuzzer-sys builds libFuzzer with.
install_tools() {
    if ! command -v c++ >/dev/null 2>&1; then
        apt_install_missing g++
    fi
    export PATH=$TOOLS_DIR/bin:$PATH
    local installed
    installed=$(cargo-fuzz --version 2>/dev/null || true)
    if [ "$installed" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
        echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS_DIR" >&2
        nice cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" \
            --root "$TOOLS_DIR" cargo-fuzz
    fi
}

all_targets() {
    cargo fuzz list --fuzz-dir "$FUZZ_DIR"
}

# The fuzz workspace's Cargo.lock (committed) pins what the root one pins,
# plus libFuzzer's crates. When the node's dependencies have changed since,
# it is brought in step with the root lock (commit the result).
sync_lock() {
    local manifest=$FUZZ_DIR/Cargo.toml
    if cargo metadata --locked --format-version 1 --manifest-path "$manifest" >/dev/null 2>&1; then
        return
    fi
    echo "fuzz/Cargo.lock is out of step with Cargo.lock; updating it (commit the result)" >&2
    cp "$ROOT/Cargo.lock" "$FUZZ_DIR/Cargo.lock"
    cargo metadata --format-version 1 --manifest-path "$manifest" >/dev/null
}

build() {
    sync_lock
    echo "building the fuzz targets" >&2
    (cd "$ROOT" && nice cargo fuzz build "${BUILD_FLAGS[@]}")
}

# run_target TARGET SECONDS: fuzzes TARGET; on a crash prints its input and
# how to reproduce it, and returns non-zero.
run_target() {
    local target=$1 seconds=$2 log artifacts status=0
    log=$SCRATCH/$target.log
    artifacts=$FUZZ_DIR/artifacts/$target
    mkdir -p "$SCRATCH/$target" "$artifacts" "$FUZZ_DIR/corpus/$target"
    echo "fuzzing $target for ${seconds}s" >&2
    # The first directory receives new inputs; the committed corpus is only
    # read. Each input gets 30 s before it counts as a hang.
    nice "$BIN_DIR/$target" "$SCRATCH/$target" "$FUZZ_DIR/corpus/$target" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
        echo "FAILED: $target (exit $status); the end of its log ($log):" >&2
        tail -n 40 "$log" >&2
        local input
        while read -r input; do
            echo "crash input: $input" >&2
            # CI's clone goes away: the input itself, to rebuild the file.
            if [ -f "$input" ] && [ "$(wc -c <"$input")" -le 65536 ]; then
                echo "     base64: $(base64 -w0 "$input")" >&2
            fi
            echo "reproduce:   $BIN_DIR/$target $input" >&2
            echo "        or:  cargo fuzz run ${BUILD_FLAGS[*]} $target $input" >&2
        done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
    fi
    return "$status"
}

seed() {
    local target
    for target in "$@"; do
        DYNAMO_FUZZ_SEEDS=$FUZZ_DIR/corpus/$target "$BIN_DIR/$target"
    done
}

# cmin TARGET ...: replaces each committed corpus by a small set of its
# inputs and the scratch corpus' that reaches every edge both reach (hit
# counts are not kept apart, which keeps the set to a few hundred inputs).
cmin() {
    local target merged
    for target in "$@"; do
        merged=$SCRATCH/$target.merged
        rm -rf "$merged" && mkdir -p "$merged" "$SCRATCH/$target"
        nice "$BIN_DIR/$target" -merge=1 -set_cover_merge=1 -use_counters=0 "$merged" \
            "$FUZZ_DIR/corpus/$target" "$SCRATCH/$target"
        rm -rf "${FUZZ_DIR:?}/corpus/$target"
        mv "$merged" "$FUZZ_DIR/corpus/$target"
    done
}

main() {
    local mode=run seconds=20
    case "${1:-}" in
        -h | --help) usage ;;
        --seed) mode=seed && shift ;;
        --cmin) mode=cmin && shift ;;
        '' | *[!0-9]*) ;;
        *) seconds=$1 && shift ;;
    esac
    install_tools
    local targets=("$@")
    if [ "${#targets[@]}" -eq 0 ]; then
        mapfile -t targets < <(all_targets)
    fi
    local started=$SECONDS
    build
    echo "built in $((SECONDS - started))s" >&2
    # The HTTP target keeps a node's store in a temporary directory.
    export TMPDIR=$SCRATCH/tmp
    rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
    trap 'rm -rf "$TMPDIR"' EXIT
    case $mode in
        seed)
            seed "${targets[@]}"
            return
            ;;
        cmin)
            cmin "${targets[@]}"
            return
            ;;
    esac
    local target failed=()
    for target in "${targets[@]}"; do
        run_target "$target" "$seconds" || failed+=("$target")
    done
    echo "fuzzed ${#targets[@]} targets in $((SECONDS - started))s in all" >&2
    if [ "${#failed[@]}" -gt 0 ]; then
        echo "crashed: ${failed[*]}" >&2
        return 1
    fi
}

main "$@"
