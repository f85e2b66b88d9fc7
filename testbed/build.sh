#!/usr/bin/env bash
# Build a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) from the published Go
# modules pinned in controlplane/go.mod, once per machine.
#
#   testbed/build.sh            # prints the bin directory on stdout
#   BIN=$(testbed/build.sh)
#
# What to build is in controlplane/build.conf; build-go-tool.sh builds it
# like every other tool of the testbed, into
# $DYNAMO_TESTBED_CACHE/k8s-vX.Y.Z/bin (default cache:
# ${XDG_CACHE_HOME:-$HOME/.cache}/dynamo-testbed), and nothing at all when
# the binaries there were built from the same module, sources, flags and Go
# version. Its environment variables (DYNAMO_TESTBED_CACHE,
# DYNAMO_TESTBED_REBUILD, DYNAMO_TESTBED_NICE) apply.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/build-go-tool.sh" "$here/controlplane"
