#!/usr/bin/env bash
# Build a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) from the published Go
# modules pinned in controlplane/go.mod, once per machine.
#
#   testbed/build.sh            # prints the bin directory on stdout
#   BIN=$(testbed/build.sh)
#
# Binaries go to $DYNAMO_TESTBED_CACHE/k8s-vX.Y.Z/bin (default cache:
# ${XDG_CACHE_HOME:-$HOME/.cache}/dynamo-testbed). When every binary is
# there and was built from the same go.mod/go.sum/sources/flags (recorded in
# a stamp file) nothing is built. Module and build caches are the machine's
# usual GOMODCACHE/GOCACHE, shared with every other Go build.
#
# Environment:
#   DYNAMO_TESTBED_CACHE    cache root (see above)
#   DYNAMO_TESTBED_REBUILD  set to 1 to build even when the stamp matches
#   DYNAMO_TESTBED_NICE     set to 0 to build at normal priority (default:
#                           nice -n 19 ionice -c3, idle CPU and IO only)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod=$here/controlplane

log() { printf 'build.sh: %s\n' "$*" >&2; }

if [[ ${DYNAMO_TESTBED_NICE:-1} == 0 ]]; then
	run() { "$@"; }
else
	run() { nice -n 19 ionice -c3 "$@"; }
fi

# Version of a module as required in go.mod ("require M V" or "	M V").
modver() {
	awk -v m="$1" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m { print $2; exit }' "$mod/go.mod"
}

k8s_version=$(modver k8s.io/kubernetes)
etcd_version=$(modver go.etcd.io/etcd/server/v3)
if [[ ! $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
	log "cannot read the k8s.io/kubernetes version from $mod/go.mod (got '$k8s_version')"
	exit 1
fi
k8s_major=${BASH_REMATCH[1]}
k8s_minor=${BASH_REMATCH[2]}

pkgs=(
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kubectl
	./cmd/etcd
)
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)

# What `kubectl version` / the /version endpoint report. Without these the
# binaries say v0.0.0-master, which clients and the skew checks dislike.
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=$k8s_major -X $p.gitMinor=$k8s_minor"
	ldflags+=" -X $p.gitTreeState=clean"
done
buildflags=(-trimpath "-ldflags=$ldflags")
export CGO_ENABLED=0 # like upstream's release builds of these binaries: static, no C toolchain

cache_root=${DYNAMO_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynamo-testbed}
dir=$cache_root/k8s-$k8s_version
bindir=$dir/bin
mkdir -p "$dir"

cd "$mod"
go_version=$(run go env GOVERSION)
stamp=$(
	{
		printf '%s\n' "$go_version" "$CGO_ENABLED" "${buildflags[@]}" "${pkgs[@]}"
		cat "$mod/go.mod" "$mod/go.sum" "$mod/cmd/etcd/main.go"
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
	log "up to date: $bindir (k8s $k8s_version, etcd $etcd_version)"
	echo "$bindir"
	exit 0
fi

# One build at a time per version; whoever waited re-checks the stamp.
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

log "k8s $k8s_version, etcd $etcd_version, $go_version; GOMODCACHE=$(run go env GOMODCACHE) GOCACHE=$(run go env GOCACHE)"

t0=$SECONDS
# Download phase (only the modules these packages need), timed on its own.
run go list -deps -f '{{with .Module}}{{.Path}}{{end}}' "${pkgs[@]}" >/dev/null
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
