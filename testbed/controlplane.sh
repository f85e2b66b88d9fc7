#!/usr/bin/env bash
# Run a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) on 127.0.0.1 for tests.
#
#   testbed/controlplane.sh start DIR   # start, wait until ready, print DIR/env
#   testbed/controlplane.sh stop DIR    # stop everything started for DIR
#   testbed/controlplane.sh status DIR  # exit 0 if every process is alive
#
# start writes, under DIR:
#   admin.kubeconfig   cluster-admin (client cert in system:masters)
#   admin.token        a static bearer token for the same identity
#   env                KUBECONFIG=, APISERVER_URL=, ETCD_URL=, ports, BIN=
#   pki/               CA, serving and client certs, service-account key pair
#   logs/*.log         one log per process
#   run/*.pid          pids, used by stop
# Every port is a free port picked at start, so several planes can run side
# by side (one DIR each). Nothing listens beyond 127.0.0.1.
#
# Environment:
#   DYNAMO_TESTBED_BIN       directory with the binaries (default: the output
#                            of testbed/build.sh, which builds them once)
#   CONTROLPLANE_CONTROLLERS kube-controller-manager --controllers value
#                            (default '*': upstream's default set, see README.md)
#   CONTROLPLANE_WATCH_PID   if set, stop the plane when that process exits
#   CONTROLPLANE_TIMEOUT     seconds to wait for readiness (default 120)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
procs=(etcd kube-apiserver kube-controller-manager kube-scheduler)

log() { printf 'controlplane.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

# Print N distinct free TCP ports on 127.0.0.1.
free_ports() {
	python3 "$here/free_ports.py" "$1"
}

# pid of process NAME started for DIR, if it is still that process.
live_pid() {
	local dir=$1 name=$2 pid exe
	[[ -f $dir/run/$name.pid ]] || return 1
	pid=$(<"$dir/run/$name.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	exe=${exe% (deleted)} # the binary may have been rebuilt since
	[[ ${exe##*/} == "$name" ]] || return 1
	echo "$pid"
}

# --- certificates ---------------------------------------------------------

# new_ca NAME CN: a self-signed CA in pki/NAME.{key,crt}.
new_ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 -subj "/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-keyout "$pki/$1.key" -out "$pki/$1.crt" 2>/dev/null
}

# sign NAME SUBJECT EXTENSIONS [CA]: pki/NAME.{key,crt} signed by pki/CA
# (default: pki/ca).
sign() {
	local name=$1 subj=$2 ext=$3 ca=${4:-ca}
	openssl req -new -newkey rsa:2048 -nodes -subj "$subj" \
		-keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
	printf '%s\n' "$ext" >"$pki/$name.ext"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
		-CAcreateserial -days 365 -sha256 -extfile "$pki/$name.ext" \
		-out "$pki/$name.crt" 2>/dev/null
	rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
	new_ca ca dynamo-testbed-ca
	local client="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
	sign apiserver "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	sign admin "/O=system:masters/CN=dynamo-testbed-admin" "$client"
	sign controller-manager "/CN=system:kube-controller-manager" "$client"
	sign scheduler "/CN=system:kube-scheduler" "$client"
	# Aggregation layer (front proxy): without it kube-controller-manager and
	# kube-scheduler log "missing content for CA bundle" errors.
	new_ca front-proxy-ca dynamo-testbed-front-proxy-ca
	sign front-proxy-client "/CN=front-proxy-client" "$client" front-proxy-ca
	# Service-account token signing key pair.
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
	openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	chmod 600 "$pki"/*.key
}

# kubeconfig FILE USER: a kubeconfig using pki/USER.{crt,key}.
kubeconfig() {
	local file=$1 user=$2
	cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: $apiserver_url
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$user.crt")
    client-key-data: $(base64 -w0 <"$pki/$user.key")
contexts:
- name: testbed
  context:
    cluster: testbed
    user: $user
current-context: testbed
EOF
	chmod 600 "$file"
}

# --- processes ------------------------------------------------------------

# launch NAME ARGS...: start $bin/NAME in its own session, log to logs/NAME.log.
launch() {
	local name=$1
	shift
	setsid "$bin/$name" "$@" </dev/null >"$dir/logs/$name.log" 2>&1 &
	local pid=$! i
	echo "$pid" >"$dir/run/$name.pid"
	# Until the forked shell has exec'd the binary, /proc/PID/exe is bash.
	for ((i = 0; i < 100; i++)); do
		live_pid "$dir" "$name" >/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	die "$name did not start; last log lines:
$(tail -n 20 "$dir/logs/$name.log")"
}

# wait_https NAME URL [curl args...]: until URL answers 200 "ok".
wait_https() {
	local name=$1 url=$2 body
	shift 2
	while ((SECONDS < deadline)); do
		live_pid "$dir" "$name" >/dev/null || die "$name exited; last log lines:
$(tail -n 20 "$dir/logs/$name.log")"
		if body=$(curl -sf --max-time 2 --cacert "$pki/ca.crt" "$@" "$url" 2>/dev/null) && [[ $body == ok ]]; then
			return 0
		fi
		sleep 0.2
	done
	die "$name not ready at $url after ${timeout}s; last log lines:
$(tail -n 20 "$dir/logs/$name.log")"
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	for p in "${procs[@]}"; do
		if live_pid "$dir" "$p" >/dev/null; then
			die "$p is already running for $dir; stop it first"
		fi
	done
	if [[ -n ${DYNAMO_TESTBED_BIN:-} ]]; then
		bin=$DYNAMO_TESTBED_BIN
	else
		bin=$("$here/build.sh")
	fi
	for p in "${procs[@]}"; do
		[[ -x $bin/$p ]] || die "no $p in $bin"
	done
	# From here on, a failed start stops whatever it had started.
	trap 'stop_after_failure' EXIT
	timeout=${CONTROLPLANE_TIMEOUT:-120}
	deadline=$((SECONDS + timeout))

	pki=$dir/pki
	rm -rf "$pki" "$dir/etcd" "$dir/logs" "$dir/run"
	mkdir -p "$pki" "$dir/etcd" "$dir/logs" "$dir/run"
	chmod 700 "$dir/etcd" "$pki"

	local service_cidr=10.96.0.0/16 # only a configuration value: nothing routes it
	service_ip=10.96.0.1
	local etcd_port etcd_peer_port api_port kcm_port sched_port
	read -r etcd_port etcd_peer_port api_port kcm_port sched_port < <(free_ports 5)
	apiserver_url=https://127.0.0.1:$api_port
	local etcd_url=http://127.0.0.1:$etcd_port

	make_pki
	kubeconfig "$dir/admin.kubeconfig" admin
	kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
	kubeconfig "$dir/scheduler.kubeconfig" scheduler
	local token
	token=$(openssl rand -hex 24)
	echo "$token" >"$dir/admin.token"
	echo "$token,dynamo-testbed-admin-token,dynamo-testbed-admin-token,system:masters" >"$pki/tokens.csv"
	chmod 600 "$dir/admin.token" "$pki/tokens.csv"

	# etcd: plain http on loopback; --unsafe-no-fsync because the data is
	# thrown away with DIR.
	launch etcd \
		--name=testbed \
		--data-dir="$dir/etcd" \
		--listen-client-urls="$etcd_url" \
		--advertise-client-urls="$etcd_url" \
		--listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
		--initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster="testbed=http://127.0.0.1:$etcd_peer_port" \
		--listen-metrics-urls= \
		--unsafe-no-fsync=true \
		--log-level=warn
	while ((SECONDS < deadline)); do
		live_pid "$dir" etcd >/dev/null || die "etcd exited: $(tail -n 20 "$dir/logs/etcd.log")"
		[[ $(curl -sf --max-time 2 "$etcd_url/health" 2>/dev/null) == *'"health":"true"'* ]] && break
		sleep 0.2
	done
	((SECONDS < deadline)) || die "etcd not healthy after ${timeout}s: $(tail -n 20 "$dir/logs/etcd.log")"

	# --endpoint-reconciler-type=none: the default reconciler writes the
	# advertise address into Endpoints default/kubernetes, and validation
	# rejects 127.0.0.1 ("may not be in the loopback range") every 10s.
	# Nothing routes service IPs here anyway.
	launch kube-apiserver \
		--etcd-servers="$etcd_url" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="$api_port" \
		--tls-cert-file="$pki/apiserver.crt" \
		--tls-private-key-file="$pki/apiserver.key" \
		--client-ca-file="$pki/ca.crt" \
		--token-auth-file="$pki/tokens.csv" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$pki/sa.pub" \
		--service-account-signing-key-file="$pki/sa.key" \
		--service-cluster-ip-range="$service_cidr" \
		--authorization-mode=Node,RBAC \
		--requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--proxy-client-cert-file="$pki/front-proxy-client.crt" \
		--proxy-client-key-file="$pki/front-proxy-client.key" \
		--endpoint-reconciler-type=none \
		--allow-privileged=true \
		--profiling=false
	wait_https kube-apiserver "$apiserver_url/readyz" \
		--cert "$pki/admin.crt" --key "$pki/admin.key"

	launch kube-controller-manager \
		--kubeconfig="$dir/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 \
		--secure-port="$kcm_port" \
		--leader-elect=false \
		--controllers="${CONTROLPLANE_CONTROLLERS:-*}" \
		--use-service-account-credentials=true \
		--service-account-private-key-file="$pki/sa.key" \
		--root-ca-file="$pki/ca.crt" \
		--cluster-signing-cert-file="$pki/ca.crt" \
		--cluster-signing-key-file="$pki/ca.key" \
		--profiling=false
	launch kube-scheduler \
		--kubeconfig="$dir/scheduler.kubeconfig" \
		--authentication-kubeconfig="$dir/scheduler.kubeconfig" \
		--authorization-kubeconfig="$dir/scheduler.kubeconfig" \
		--bind-address=127.0.0.1 \
		--secure-port="$sched_port" \
		--leader-elect=false \
		--profiling=false
	# Their serving certs are self-signed in memory, hence -k (loopback only).
	wait_https kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" -k
	wait_https kube-scheduler "https://127.0.0.1:$sched_port/healthz" -k

	# The service-account controller has run once it made default/default;
	# pods cannot be created in a namespace before its "default" SA exists.
	while ((SECONDS < deadline)); do
		curl -sf --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
			"$apiserver_url/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1 && break
		sleep 0.2
	done
	((SECONDS < deadline)) || die "no default/default service account after ${timeout}s"

	cat >"$dir/env" <<EOF
KUBECONFIG=$dir/admin.kubeconfig
APISERVER_URL=$apiserver_url
APISERVER_CA=$pki/ca.crt
ADMIN_TOKEN_FILE=$dir/admin.token
ETCD_URL=$etcd_url
KUBE_CONTROLLER_MANAGER_PORT=$kcm_port
KUBE_SCHEDULER_PORT=$sched_port
BIN=$bin
EOF

	if [[ -n ${CONTROLPLANE_WATCH_PID:-} ]]; then
		local watched=$CONTROLPLANE_WATCH_PID
		# shellcheck disable=SC2016 # $1..$3 are expanded by the inner bash
		setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" stop "$3"' \
			watchdog "$watched" "$here/controlplane.sh" "$dir" </dev/null >>"$dir/logs/watchdog.log" 2>&1 &
		echo $! >"$dir/run/watchdog.pid"
	fi
	trap - EXIT
	log "ready in ${SECONDS}s: $apiserver_url (KUBECONFIG=$dir/admin.kubeconfig)"
	cat "$dir/env"
}

stop_after_failure() {
	local rc=$?
	trap - EXIT
	log "start failed; stopping what was started (logs stay in $dir/logs)"
	stop || true
	exit "$rc"
}

stop() {
	[[ -d $dir ]] || return 0
	dir=$(cd "$dir" && pwd)
	local p pid i
	# The watchdog is a bash loop; only kill it when it is not us.
	if [[ -f $dir/run/watchdog.pid ]]; then
		pid=$(<"$dir/run/watchdog.pid")
		if [[ $pid =~ ^[0-9]+$ && $pid != "$$" && $pid != "$PPID" ]] &&
			grep -qa watchdog "/proc/$pid/cmdline" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
		fi
		rm -f "$dir/run/watchdog.pid"
	fi
	# Reverse start order: clients first, etcd last.
	for ((i = ${#procs[@]} - 1; i >= 0; i--)); do
		p=${procs[i]}
		if pid=$(live_pid "$dir" "$p"); then
			kill -TERM "$pid" 2>/dev/null || true
			local waited=0
			while live_pid "$dir" "$p" >/dev/null && ((waited < 100)); do
				sleep 0.1
				waited=$((waited + 1))
			done
			if live_pid "$dir" "$p" >/dev/null; then
				log "$p ($pid) ignored SIGTERM for 10s; killing it"
				kill -KILL "$pid" 2>/dev/null || true
				sleep 0.2
			fi
		fi
		rm -f "$dir/run/$p.pid"
	done
	for p in "${procs[@]}"; do
		if live_pid "$dir" "$p" >/dev/null; then
			die "$p still running"
		fi
	done
}

status() {
	local p rc=0
	for p in "${procs[@]}"; do
		if pid=$(live_pid "$dir" "$p"); then
			echo "$p running ($pid)"
		else
			echo "$p not running"
			rc=1
		fi
	done
	return "$rc"
}

(($# == 2)) || usage
dir=$2
case $1 in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
