#!/usr/bin/env bash
# End-to-end test on a real Kubernetes cluster: kind, or any cluster the
# current kubeconfig points at. See e2e/README.md.
#
#  1. builds the node and operator images from host binaries
#     (scripts/build-images.sh) and loads them into kind (or pushes them when
#     IMAGE_PREFIX names a registry),
#  2. on kind, labels the nodes with three zones,
#  3. installs the chart (helm, or manifests/install.yaml without helm),
#  4. creates a 3-zone DynamoCluster (N=3 R=2 W=2) and waits until it is Ready,
#  5. runs a writer on this host through `kubectl port-forward` (restarted
#     whenever it drops), recording every acknowledged write, while it
#     scales every zone up to 2 and back to 1, deletes a pod, upgrades the
#     operator and then the node image to a new tag,
#  6. reads every acknowledged write back and compares the values.
#
# Environment:
#   KIND_CLUSTER        kind cluster name (default: from a kind-* context)
#   IMAGE_PREFIX        registry prefix for non-kind clusters, e.g. reg.example/team/
#   E2E_NAMESPACE       namespace of the DynamoCluster (default dynamo-e2e)
#   OPERATOR_NAMESPACE  namespace of the operator (default dynamo-system)
#   E2E_TIMEOUT         seconds to wait for each step (default 600)
#   E2E_SKIP_BUILD=1    use images already built/loaded (tags e2e-1, e2e-2)
#   E2E_KEEP=1          keep the DynamoCluster, namespaces and release afterwards
#
# e2e/run.sh --print-cluster-spec prints the DynamoCluster it would create.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

namespace="${E2E_NAMESPACE:-dynamo-e2e}"
operator_namespace="${OPERATOR_NAMESPACE:-dynamo-system}"
timeout="${E2E_TIMEOUT:-600}"
prefix="${IMAGE_PREFIX:-}"
release=dynamo-operator
cluster=e2e
tag1=e2e-1
tag2=e2e-2
local_port="${E2E_LOCAL_PORT:-17000}"
work="$repo/e2e/.work"

zones=(zone-a zone-b zone-c)
zone_selectors=1
# The DynamoCluster under test: every zone with $1 replicas of image $2.
cluster_spec() {
    local replicas=$1 image=$2 zone
    printf 'apiVersion: kv.dynamo.dev/v1alpha1\nkind: DynamoCluster\n'
    printf 'metadata:\n  name: %s\n  namespace: %s\n' "$cluster" "$namespace"
    printf 'spec:\n  image: %s\n  pullPolicy: IfNotPresent\n  zones:\n' "$image"
    for zone in "${zones[@]}"; do
        printf '  - name: %s\n    replicas: %s\n' "$zone" "$replicas"
        if [ "$zone_selectors" = 1 ]; then
            printf '    nodeSelector:\n      topology.kubernetes.io/zone: %s\n' "$zone"
        fi
    done
    printf '  replication:\n    factor: 3\n    readQuorum: 2\n    writeQuorum: 2\n'
    printf '  partitions: 64\n  storage:\n    size: 1Gi\n'
}

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# Prints the DynamoCluster as created, touching nothing: the packaging tests
# validate it against the CRD.
if [ "${1:-}" = --print-cluster-spec ]; then
    cluster_spec 1 "dynamo-node:$tag1"
    exit 0
fi

rm -rf "$work"
mkdir -p "$work"

for tool in kubectl docker python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
kubectl version >/dev/null 2>&1 || die "no Kubernetes cluster reachable with the current kubeconfig"

context=$(kubectl config current-context)
kind_cluster="${KIND_CLUSTER:-}"
if [ -z "$kind_cluster" ] && [[ "$context" == kind-* ]]; then
    kind_cluster="${context#kind-}"
fi
if [ -n "$kind_cluster" ]; then
    command -v kind >/dev/null 2>&1 || die "kind is required to load images into kind cluster $kind_cluster"
elif [ -z "$prefix" ]; then
    die "not a kind cluster ($context): set IMAGE_PREFIX to a registry the cluster can pull from"
fi
log "context $context${kind_cluster:+ (kind cluster $kind_cluster)}"

# --- cleanup -----------------------------------------------------------------
writer_pid=""
forward_pid=""
stop_background() {
    touch "$work/stop"
    if [ -n "$writer_pid" ]; then wait "$writer_pid" 2>/dev/null || true; writer_pid=""; fi
    if [ -n "$forward_pid" ]; then
        # The loop's running kubectl port-forward, then the loop itself.
        pkill -P "$forward_pid" 2>/dev/null || true
        kill "$forward_pid" 2>/dev/null || true
        wait "$forward_pid" 2>/dev/null || true
        forward_pid=""
    fi
}
cleanup() {
    local status=$?
    stop_background
    if [ "$status" -ne 0 ]; then
        log "state at failure:"
        kubectl -n "$namespace" get dynamocluster,statefulset,pod,service -o wide >&2 || true
        kubectl -n "$namespace" get dynamocluster "$cluster" -o jsonpath='{.status}' >&2 || true
        echo >&2
        kubectl -n "$operator_namespace" logs "deployment/$release" --tail=50 >&2 || true
    fi
    if [ "${E2E_KEEP:-0}" != 1 ]; then
        kubectl delete namespace "$namespace" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- images ------------------------------------------------------------------
node_image() { echo "${prefix}dynamo-node:$1"; }
operator_image() { echo "${prefix}dynamo-operator:$1"; }
if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
    log "building images"
    IMAGE_PREFIX="$prefix" scripts/build-images.sh --tag "$tag1" node operator >/dev/null
    # The upgrade rolls to a second tag of the same build: what is tested is
    # the rollout, not a change in the node.
    docker tag "$(node_image "$tag1")" "$(node_image "$tag2")"
    docker tag "$(operator_image "$tag1")" "$(operator_image "$tag2")"
    for image in "$(node_image "$tag1")" "$(node_image "$tag2")" \
        "$(operator_image "$tag1")" "$(operator_image "$tag2")"; do
        if [ -n "$kind_cluster" ]; then
            log "kind load docker-image $image"
            kind load docker-image "$image" --name "$kind_cluster" >/dev/null
        else
            log "docker push $image"
            docker push "$image" >/dev/null
        fi
    done
fi

# --- zones -------------------------------------------------------------------
if [ -n "$kind_cluster" ]; then
    # Workers if there are any, else the control plane; zones round-robin.
    mapfile -t nodes < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o name)
    [ "${#nodes[@]}" -gt 0 ] || mapfile -t nodes < <(kubectl get nodes -o name)
    i=0
    for node in "${nodes[@]}"; do
        kubectl label "$node" "topology.kubernetes.io/zone=${zones[$((i % 3))]}" --overwrite >/dev/null
        i=$((i + 1))
    done
    if [ "${#nodes[@]}" -lt 3 ]; then
        # Fewer than three nodes: zones stay logical (no node pinning).
        log "only ${#nodes[@]} schedulable node(s): zones are not pinned to nodes"
        zone_selectors=0
    fi
else
    mapfile -t found < <(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}{end}' | sort -u | grep -v '^$' || true)
    if [ "${#found[@]}" -ge 3 ]; then
        zones=("${found[@]:0:3}")
    else
        log "fewer than three node zones labelled: zones are not pinned to nodes"
        zone_selectors=0
    fi
fi
log "zones: ${zones[*]} (pinned to nodes: $zone_selectors)"

# --- operator ----------------------------------------------------------------
install_operator() {
    local tag=$1
    if command -v helm >/dev/null 2>&1; then
        log "helm upgrade --install $release (operator $tag)"
        helm upgrade --install "$release" helm/dynamo-operator \
            --namespace "$operator_namespace" --create-namespace \
            --set "image.repository=${prefix}dynamo-operator" --set "image.tag=$tag" \
            --wait --timeout "${timeout}s" >/dev/null
    else
        log "no helm: kubectl apply manifests/install.yaml (operator $tag)"
        [ "$operator_namespace" = dynamo-system ] || die "without helm, OPERATOR_NAMESPACE must be dynamo-system"
        kubectl apply --server-side -f manifests/install.yaml >/dev/null
        kubectl -n "$operator_namespace" set image "deployment/$release" "operator=$(operator_image "$tag")" >/dev/null
    fi
    kubectl -n "$operator_namespace" rollout status "deployment/$release" --timeout "${timeout}s" >/dev/null
}
install_operator "$tag1"
kubectl wait --for condition=Established crd/dynamoclusters.kv.dynamo.dev --timeout 60s >/dev/null

# --- the cluster -------------------------------------------------------------
apply_cluster() {
    cluster_spec "$1" "$2" >"$work/cluster.yaml"
    kubectl apply --server-side --field-manager e2e -f "$work/cluster.yaml" >/dev/null
}

# Pods of the cluster: those of the StatefulSets the DynamoCluster owns.
cluster_pods_json() {
    kubectl -n "$namespace" get statefulsets,pods -o json
}
# One line per pod: name, ready|notready, images.
pods_summary() {
    cluster_pods_json | python3 e2e/cluster_objects.py pods "$cluster"
}

# Waits until the operator has seen the latest spec, reports Ready, and
# exactly $1 pods run image $2, all ready.
wait_cluster() {
    local want_pods=$1 want_image=$2 deadline=$((SECONDS + timeout))
    while :; do
        local generation observed ready summary pods ok
        generation=$(kubectl -n "$namespace" get dynamocluster "$cluster" -o jsonpath='{.metadata.generation}')
        observed=$(kubectl -n "$namespace" get dynamocluster "$cluster" -o jsonpath='{.status.observedGeneration}')
        ready=$(kubectl -n "$namespace" get dynamocluster "$cluster" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
        summary=$(pods_summary)
        pods=$(grep -c . <<<"$summary" || true)
        ok=$(grep -c " ready $want_image\$" <<<"$summary" || true)
        if [ "$observed" = "$generation" ] && [ "$ready" = True ] && [ "$pods" = "$want_pods" ] && [ "$ok" = "$want_pods" ]; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "cluster not ready with $want_pods pods of $want_image after ${timeout}s (generation $generation, observed ${observed:-none}, Ready ${ready:-none}, pods: $(tr '\n' ';' <<<"$summary"))"
        fi
        sleep 3
    done
}

kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
log "creating DynamoCluster $namespace/$cluster (3 zones x 1, N=3 R=2 W=2)"
apply_cluster 1 "$(node_image "$tag1")"
wait_cluster 3 "$(node_image "$tag1")"
log "cluster ready"

# The client Service: the non-headless Service the DynamoCluster owns.
client_service=$(kubectl -n "$namespace" get services -o json | python3 e2e/cluster_objects.py client-service "$cluster")
[ -n "$client_service" ] || die "the DynamoCluster owns no client (non-headless) Service"
client_port=$(kubectl -n "$namespace" get service "$client_service" -o jsonpath='{.spec.ports[0].port}')
log "client Service $client_service:$client_port"
# The operator generates the cluster's credentials; the writer uses the
# client token (kv_client.py reads DYNAMO_TOKEN).
DYNAMO_TOKEN=$(kubectl -n "$namespace" get secret "$cluster-auth" -o jsonpath='{.data.client-token}' | base64 -d)
[ -n "$DYNAMO_TOKEN" ] || die "the generated Secret $cluster-auth has no client-token"
export DYNAMO_TOKEN

# Keeps a port-forward to the client Service running until $work/stop exists
# (a port-forward ends when its pod goes away, so it is started again);
# sets forward_pid.
start_port_forward() {
    (
        while [ ! -e "$work/stop" ]; do
            kubectl -n "$namespace" port-forward "service/$client_service" "$local_port:$client_port" \
                >>"$work/port-forward.log" 2>&1 || true
            sleep 1
        done
    ) &
    forward_pid=$!
}

# --- writer --------------------------------------------------------------------
rm -f "$work/stop"
start_port_forward
url="http://127.0.0.1:$local_port"
deadline=$((SECONDS + 60))
until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=2)' "$url" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "port-forward to $client_service never answered /readyz"
    sleep 1
done

phase() { echo "$1" >"$work/phase"; log "phase: $1"; }
phase steady
python3 e2e/kv_client.py write --url "$url" --acked "$work/acked.tsv" \
    --phase-file "$work/phase" --stop-file "$work/stop" >"$work/writer.log" 2>&1 &
writer_pid=$!
sleep 20

phase scale-up
apply_cluster 2 "$(node_image "$tag1")"
wait_cluster 6 "$(node_image "$tag1")"
sleep 10

phase scale-down
apply_cluster 1 "$(node_image "$tag1")"
wait_cluster 3 "$(node_image "$tag1")"
sleep 10

phase pod-deleted
victim=$(pods_summary | head -n 1 | cut -d' ' -f1)
log "kubectl delete pod $victim"
kubectl -n "$namespace" delete pod "$victim" --wait=false >/dev/null
sleep 5
wait_cluster 3 "$(node_image "$tag1")"
sleep 10

phase operator-upgrade
install_operator "$tag2"
wait_cluster 3 "$(node_image "$tag1")"
sleep 10

phase node-upgrade
apply_cluster 1 "$(node_image "$tag2")"
wait_cluster 3 "$(node_image "$tag2")"
sleep 10

phase finished
stop_background
cat "$work/writer.log" >&2
[ -s "$work/acked.tsv" ] || die "no write was acknowledged"
for p in steady scale-up scale-down pod-deleted operator-upgrade node-upgrade; do
    grep -q $'\t'"$p"$'\t' "$work/acked.tsv" || die "no write was acknowledged during phase $p"
done

# --- check -----------------------------------------------------------------------
rm -f "$work/stop"
start_port_forward
sleep 3
python3 e2e/kv_client.py verify --url "$url" --acked "$work/acked.tsv" >&2 \
    || die "acknowledged writes were lost or changed"
stop_background

if [ "${E2E_KEEP:-0}" != 1 ]; then
    kubectl -n "$namespace" delete dynamocluster "$cluster" --wait=true --timeout "${timeout}s" >/dev/null || true
    if command -v helm >/dev/null 2>&1; then
        helm uninstall "$release" --namespace "$operator_namespace" >/dev/null || true
    fi
fi
log "PASSED: every acknowledged write survived scaling, a pod deletion and two upgrades"
