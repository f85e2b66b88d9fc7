#!/usr/bin/env bash
# Build a real tool the tests use (Prometheus, Jaeger, ...) from the
# published Go modules pinned in one module directory of testbed/, once per
# machine.
#
#   BIN=$(testbed/build-go-tool.sh testbed/prometheus)   # the bin directory
#
# The module directory holds go.mod, go.sum and build.conf, a bash fragment
# that sets:
#   name=prometheus                         # cache directory name
#   pkgs=(github.com/prometheus/prometheus/cmd/prometheus)
#   bins=(prometheus)                       # what go build leaves
#   tags=""                                 # go build -tags (optional)
#   ldflags="-s -w"                         # go build -ldflags (optional)
#   cgo=0                                   # CGO_ENABLED (optional)
# and any Go sources of its own (a main package of a smaller build). It is
# sourced with mod set to the module directory, so it may compute these
# from go.mod (controlplane/build.conf does).
#
# Binaries go to $DYNAMO_TESTBED_CACHE/<name>/bin (default cache:
# ${XDG_CACHE_HOME:-$HOME/.cache}/dynamo-testbed). When every binary is there
# and was built from the same go.mod, go.sum, build.conf, sources and Go
# version (recorded in a stamp file), nothing is built. Module and build
# caches are the machine's usual GOMODCACHE/GOCACHE, shared with every
# other Go build.
#
# Environment:
#   DYNAMO_TESTBED_CACHE    cache root (see above)
#   DYNAMO_TESTBED_REBUILD  set to 1 to build even when the stamp matches
#   DYNAMO_TESTBED_NICE     set to 0 to build at normal priority (default:
#                           nice -n 19 ionice -c3, idle CPU and IO only)
set -euo pipefail

log() { printf 'build-go-tool.sh: %s\n' "$*" >&2; }

[[ $# == 1 && -f $1/build.conf && -f $1/go.mod ]] || {
	log "usage: $0 MODULE_DIR (with go.mod and build.conf)"
	exit 2
}
mod=$(cd "$1" && pwd)

if [[ ${DYNAMO_TESTBED_NICE:-1} == 0 ]]; then
	run() { "$@"; }
else
	run() { nice -n 19 ionice -c3 "$@"; }
fi

name="" pkgs=() bins=() tags="" ldflags="-s -w" cgo=0
# shellcheck source=/dev/null
. "$mod/build.conf"
[[ -n $name && ${#pkgs[@]} -gt 0 && ${#bins[@]} -gt 0 ]] || {
	log "$mod/build.conf must set name, pkgs and bins"
	exit 2
}
buildflags=(-trimpath "-ldflags=$ldflags")
[[ -z $tags ]] || buildflags+=("-tags=$tags")
export CGO_ENABLED=$cgo

cache_root=${DYNAMO_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynamo-testbed}
dir=$cache_root/$name
bindir=$dir/bin
mkdir -p "$dir"

cd "$mod"
go_version=$(run go env GOVERSION)
stamp=$(
	{
		printf '%s\n' "$go_version" "$CGO_ENABLED" "${buildflags[@]}" "${pkgs[@]}"
		find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name 'build.conf' \) -print0 |
			sort -z | xargs -0 cat
	} | sha256sum | cut -d' ' -f1
)

up_to_date() {
	[[ ${DYNAMO_TESTBED_REBUILD:-0} != 1 ]] || return 1
	[[ -f $dir/stamp && $(<"$dir/stamp") == "$stamp" ]] || return 1
	local b
	for b in "${bins[@]}"; do
		[[ -x $bindir/$b ]] || return 1
	done
}

if up_to_date; then
	log "up to date: $bindir ($name)"
	echo "$bindir"
	exit 0
fi

# One build at a time per tool; whoever waited re-checks the stamp.
exec 9>"$dir/lock"
flock 9
if up_to_date; then
	log "up to date: $bindir (built by another process)"
	echo "$bindir"
	exit 0
fi

tmp=$(mktemp -d "$dir/bin.tmp.XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

log "$name, $go_version; GOMODCACHE=$(run go env GOMODCACHE) GOCACHE=$(run go env GOCACHE)"
t0=$SECONDS
# Download phase (only the modules these packages need), timed on its own.
run go list -deps "${buildflags[@]}" -f '{{with .Module}}{{.Path}}{{end}}' "${pkgs[@]}" >/dev/null
t1=$SECONDS
log "modules ready in $((t1 - t0))s"
run go build "${buildflags[@]}" -o "$tmp/" "${pkgs[@]}"
t2=$SECONDS
log "built in $((t2 - t1))s"

for b in "${bins[@]}"; do
	[[ -x $tmp/$b ]] || {
		log "missing $b after go build"
		exit 1
	}
done
rm -rf "$bindir"
mv "$tmp" "$bindir"
echo "$stamp" >"$dir/stamp"
log "done: $bindir"
echo "$bindir"
