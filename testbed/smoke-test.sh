#!/usr/bin/env bash
# End-to-end check of the test control plane: start it in a fresh directory,
# exercise the apiserver, scheduler, controllers and PodSecurity admission
# with kubectl, stop it and check that no process is left.
#
#   testbed/smoke-test.sh [DIR]     # DIR defaults to a new temporary directory
#
# Prints one line per check and "N passed, N failed" at the end; exits
# non-zero when a check failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
own_dir=0
if (($# == 0)); then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/dynamo-testbed.XXXXXX")
	own_dir=1 # removed after a fully passing run
else
	dir=$1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

passed=0
failed=0
ok() {
	echo "PASS $*"
	passed=$((passed + 1))
}
bad() {
	echo "FAIL $*"
	failed=$((failed + 1))
}

finish() {
	local rc=$?
	trap - EXIT
	((rc == 0)) || bad "smoke-test.sh stopped early (exit $rc)"
	"$here/controlplane.sh" stop "$dir" || bad "controlplane.sh stop"
	# Any etcd/kube-* process whose command line mentions DIR is a leftover.
	local left="" pid exe
	for pid in /proc/[0-9]*; do
		exe=$(readlink "$pid/exe" 2>/dev/null) || continue
		case ${exe##*/} in etcd | etcd" (deleted)" | kube-*) ;; *) continue ;; esac
		if tr '\0' ' ' <"$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
			left+=" ${pid#/proc/}"
		fi
	done
	if [[ -n $left ]]; then
		bad "processes left after stop: $left"
	else
		ok "no process left after stop"
	fi
	echo "$passed passed, $failed failed"
	if ((failed == 0 && rc == 0)); then
		((own_dir == 0)) || rm -rf "$dir"
	else
		echo "logs: $dir/logs" >&2
		exit 1
	fi
}
trap finish EXIT

t0=$SECONDS
"$here/controlplane.sh" start "$dir" >/dev/null
ok "controlplane.sh start ($((SECONDS - t0))s)"
# shellcheck disable=SC1091 # written by controlplane.sh start
source "$dir/env"
export KUBECONFIG
k() { "$BIN/kubectl" "$@"; }

# 1. readiness and version
if [[ $(k get --raw /readyz) == ok ]]; then ok "kubectl get --raw /readyz = ok"; else bad "/readyz"; fi
server_version=$(k version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')
if [[ $server_version == v1.* && $server_version != v1.0.0* ]]; then
	ok "server version $server_version"
else
	bad "server version '$server_version'"
fi
name=$(curl -sf --cacert "$APISERVER_CA" -H "Authorization: Bearer $(<"$ADMIN_TOKEN_FILE")" \
	"$APISERVER_URL/api/v1/namespaces/kube-system" | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["name"])')
if [[ $name == kube-system ]]; then ok "static admin token works (curl)"; else bad "static admin token"; fi

# 2. namespace
if k create namespace smoke >/dev/null; then ok "create namespace smoke"; else bad "create namespace"; fi

# 3. a fake node: Ready, with capacity/allocatable. The TaintNodesByCondition
# admission plugin gives every new node the node.kubernetes.io/not-ready
# taint; the nodelifecycle controller removes it once it sees Ready=True.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: fake-node-1
  labels:
    kubernetes.io/hostname: fake-node-1
    kubernetes.io/os: linux
    topology.kubernetes.io/zone: zone-a
status:
  capacity: {cpu: "8", memory: 32Gi, pods: "110"}
  allocatable: {cpu: "8", memory: 32Gi, pods: "110"}
  conditions:
  - type: Ready
    status: "True"
    reason: KubeletReady
    message: fake node
    lastHeartbeatTime: "$now"
    lastTransitionTime: "$now"
EOF
alloc=$(k get node fake-node-1 -o jsonpath='{.status.allocatable.cpu}')
if [[ $alloc != 8 ]]; then
	# Status was dropped on create: set it through the status subresource.
	k patch node fake-node-1 --subresource=status --type=merge -p "{\"status\":{\"capacity\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\"},\"allocatable\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" >/dev/null
	echo "note: node status was not kept on create; patched via --subresource=status"
fi
if [[ $(k get node fake-node-1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]; then
	ok "fake node fake-node-1 Ready, allocatable cpu=$(k get node fake-node-1 -o jsonpath='{.status.allocatable.cpu}')"
else
	bad "fake node status"
fi
# A node lease, as a kubelet keeps one (the harness would renew it).
k apply -f - >/dev/null <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: fake-node-1
  namespace: kube-node-lease
spec:
  holderIdentity: fake-node-1
  leaseDurationSeconds: 40
  renewTime: "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"
EOF
echo "node taints after create (nodelifecycle drops not-ready once it sees Ready=True): $(k get node fake-node-1 -o jsonpath='{.spec.taints}')"

# 4. a pod gets bound to the fake node by the scheduler
k apply -n smoke -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: p1
spec:
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    resources:
      requests: {cpu: 100m, memory: 64Mi}
EOF
if k wait -n smoke pod/p1 --for=jsonpath='{.spec.nodeName}'=fake-node-1 --timeout=60s >/dev/null; then
	ok "scheduler bound pod smoke/p1 to $(k get -n smoke pod p1 -o jsonpath='{.spec.nodeName}')"
else
	bad "pod p1 not bound: $(k get -n smoke pod p1 -o jsonpath='{.status.conditions}')"
fi
echo "node taints now: $(k get node fake-node-1 -o jsonpath='{.spec.taints}')"

# 5. a StatefulSet: the statefulset controller makes web-0, the scheduler binds it
k apply -n smoke -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: registry.k8s.io/pause:3.10
EOF
# OrderedReady: web-1 only comes once web-0 is Running and Ready, which needs
# something that plays the kubelet; here we only check web-0.
if k wait -n smoke pod/web-0 --for=jsonpath='{.spec.nodeName}'=fake-node-1 --timeout=60s >/dev/null 2>&1; then
	ok "statefulset controller created web-0, bound to fake-node-1"
else
	bad "statefulset pod web-0: $(k get -n smoke pods -o wide 2>&1)"
fi

# 6. garbage collector: deleting an owner deletes its dependents
k create configmap -n smoke owner >/dev/null
uid=$(k get configmap -n smoke owner -o jsonpath='{.metadata.uid}')
k apply -n smoke -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: $uid
EOF
k delete configmap -n smoke owner --wait=true >/dev/null
if k wait -n smoke configmap/dependent --for=delete --timeout=60s >/dev/null 2>&1; then
	ok "garbage collector deleted configmap smoke/dependent after its owner"
else
	bad "garbage collector"
fi

# 7. service accounts: the default SA appears, TokenRequest works, and the
# legacy token controller fills a service-account-token secret
k create namespace sa-check >/dev/null
if k wait -n sa-check serviceaccount/default --for=create --timeout=30s >/dev/null 2>&1; then
	ok "serviceaccount controller created sa-check/default"
else
	bad "no default service account in sa-check"
fi
token=$(k create token -n sa-check default --duration=10m 2>&1)
if [[ $token == *.*.* ]]; then ok "TokenRequest (kubectl create token) issued a JWT"; else bad "kubectl create token: $token"; fi
k apply -n sa-check -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: default-token
  annotations:
    kubernetes.io/service-account.name: default
type: kubernetes.io/service-account-token
EOF
if k wait -n sa-check secret/default-token --for=jsonpath='{.data.token}' --timeout=30s >/dev/null 2>&1 ||
	[[ -n $(k get -n sa-check secret default-token -o jsonpath='{.data.token}') ]]; then
	ok "serviceaccount-token controller filled secret sa-check/default-token"
else
	bad "serviceaccount-token controller"
fi

# 8. namespace controller: deleting a namespace finalizes it
k create configmap -n sa-check x >/dev/null
k delete namespace sa-check --wait=false >/dev/null
if k wait namespace/sa-check --for=delete --timeout=60s >/dev/null 2>&1; then
	ok "namespace controller deleted namespace sa-check"
else
	bad "namespace sa-check still there: $(k get namespace sa-check -o jsonpath='{.status}')"
fi

# 9. PodSecurity admission: enforce=restricted rejects a pod without securityContext
k create namespace restricted >/dev/null
k label namespace restricted pod-security.kubernetes.io/enforce=restricted >/dev/null
out=$(k run -n restricted bare --image=registry.k8s.io/pause:3.10 --restart=Never 2>&1 || true)
if [[ $out == *'violates PodSecurity "restricted:latest"'* ]]; then
	ok "PodSecurity restricted rejected a bare pod: ${out:0:160}..."
else
	bad "PodSecurity did not reject the bare pod: $out"
fi
if k apply -n restricted -f - >/dev/null 2>&1 <<EOF; then
apiVersion: v1
kind: Pod
metadata:
  name: hardened
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
EOF
	ok "PodSecurity restricted admitted a hardened pod"
else
	bad "PodSecurity rejected the hardened pod"
fi

# 10. RBAC is enforced: an unprivileged service account cannot list pods
out=$(k auth can-i list pods -n smoke --as=system:serviceaccount:smoke:default 2>&1 || true)
if [[ $out == no ]]; then ok "RBAC: smoke:default cannot list pods"; else bad "RBAC can-i said '$out'"; fi
