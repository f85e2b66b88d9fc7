"""TEST CODE: a stand-in for the kubelet (and a hostPath volume provisioner)
on the testbed control plane. It is not a kubelet and must never be used
outside tests.

What it does, against a real kube-apiserver, with the admin identity:

* Nodes. Creates fake Node objects for a node set (`zones`: three nodes
  labelled `topology.kubernetes.io/zone=zone-a|zone-b|zone-c`; `single`: one
  node without a zone label, as a fresh one-node kind cluster has), with a
  Ready condition, capacity/allocatable and node info, and keeps them healthy
  by renewing each node's Lease in `kube-node-lease` and its Ready condition
  every `heartbeat_seconds` (10 s). `fail_node()` stops the heartbeat and
  kills the node's processes (a powered-off machine); `remove_node()`
  deletes the Node object.
* Storage. Creates the default StorageClass `standard` (provisioner
  `testbed.dynamo.dev/hostpath`, reclaimPolicy Delete, allowVolumeExpansion,
  volumeBindingMode Immediate). For every claim the PV controller hands to
  that provisioner it creates a PersistentVolume (a hostPath directory under
  the state dir, mode 0777 like kind's local-path provisioner, capacity = the
  request, claimRef to the claim) for the real PV controller to bind. When
  such a volume is Released and its policy is Delete it removes the directory
  and the PV. So a claim's directory outlives its pods and goes with the claim.
  A bound claim asking for more than its volume provides gets it (PV
  capacity and the claim's status.capacity raised): the part of a CSI
  resizer and the kubelet's filesystem growth a hostPath directory needs.
* Pods. Watches the pods bound to its nodes and runs each pod's single
  container as a local process:
  - the command is the container's `command` + `args` (or the image's
    entrypoint and cmd); `dynamo-node` and `dynamo-operator` (bare or as
    `/usr/local/bin/...`) run `target/debug/<name>` of the repository, and
    ANY image is mapped to those binaries: an image whose last path
    component starts with `dynamo-node` / `dynamo-operator` gets that
    binary and the image's entrypoint, user and environment as
    `images/*.Dockerfile` define them; no image is ever pulled. One
    exception, matched first: an image whose last path component starts
    with `dynamo-node-previous` runs the previous release's dynamo-node
    (`paths.previous_node_binary`, built by scripts/build-previous-node.sh)
    for the mixed-version test. Other commands (e.g. `sh`) run from the
    host's PATH;
  - the environment: `env` values (with `$(VAR)` expansion), `valueFrom`
    fieldRef (`metadata.name`, `metadata.namespace`, `metadata.uid`,
    `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`,
    `status.hostIP`, labels/annotations), `secretKeyRef`, `configMapKeyRef`,
    `envFrom`, plus `HOSTNAME` and `KUBERNETES_SERVICE_HOST/PORT` pointing at
    the API server's loopback address (no Service routing exists);
  - the files: the process runs in its own mount namespace
    (`unshare --mount --propagation private`) where every volume is
    bind-mounted at its exact `mountPath` (`subPath` and `readOnly`
    honoured), and `/` is remounted read-only when the container asks for
    `readOnlyRootFilesystem`. ConfigMap, Secret, downwardAPI and projected
    (service-account token, CA, namespace) volumes are materialized into
    per-pod directories the way the kubelet's atomic writer does (`..data`
    symlink swap), honouring `items`, `defaultMode` and `optional`, and are
    kept in sync with later changes of the ConfigMap/Secret (at once, where
    the kubelet takes up to a minute); PVC volumes are the PV's directory;
    emptyDir is a per-pod directory. Missing mount-point directories are
    created on the host and removed again when unused;
  - the user: `runAsUser`/`runAsGroup`/`fsGroup`/`supplementalGroups` (or
    the image's user) through `setpriv`; the process gets
    `--pdeathsig KILL` so it dies with the harness;
  - networking: every pod gets its own loopback IP from 127.42.0.0/16 as
    podIP/podIPs (Linux routes all of 127/8 to `lo`). A real pod has its own
    network namespace where `0.0.0.0:PORT` is private to it; here all
    processes share the host's, so `0.0.0.0:` and `[::]:` in env values and
    args are REWRITTEN to `<podIP>:`. Node hostIPs are 127.41.0.x;
  - name resolution: for every pod with `hostname` and `subdomain`
    (StatefulSet pods) whose subdomain names a headless Service selecting
    it (and that is ready, or the Service publishes not-ready addresses),
    `<hostname>.<subdomain>.<ns>.svc` and `...svc.cluster.local` go into
    `/etc/hosts` inside a clearly marked block, removed when the pod goes
    and when the harness stops; nothing else on the host is changed;
  - status like a kubelet: phase Pending -> Running (Succeeded/Failed on
    exit unless restarted), conditions PodScheduled (kept),
    PodReadyToStartContainers, Initialized, ContainersReady, Ready (with
    readinessGates), containerStatuses (ready, started, restartCount,
    state running / waiting with ContainerCreating or CrashLoopBackOff /
    terminated with exitCode, lastState, image, imageID, containerID),
    podIP/podIPs, hostIP/hostIPs, startTime, and kubelet-style Events;
  - probes: httpGet (named or numbered port on the pod IP, HTTP or HTTPS
    without certificate verification, headers), tcpSocket and exec (run in
    the pod's mount namespace with nsenter), with initialDelaySeconds,
    periodSeconds, timeoutSeconds, failureThreshold, successThreshold; the
    startupProbe gates the others, liveness failures restart the container,
    readiness drives the Ready condition;
  - restarts: restartPolicy Always/OnFailure restart an exited process
    with the kubelet's back-off (first restart at once, then 10 s doubling
    up to a cap; `backoff_cap_seconds` makes the cap short for tests) and
    report CrashLoopBackOff meanwhile;
  - deletion: when a pod gets a deletionTimestamp, SIGTERM, wait up to its
    grace period, SIGKILL, report the terminal status and delete the pod
    with grace period 0 and a uid precondition, as a kubelet finalizes. A
    pod whose node goes away is killed;
  - logs: stdout and stderr of each container start go to
    `<state>/logs/<ns>_<pod>_<uid>/<container>/<restart>.log`; the
    harness's own log is `<state>/kubelet.log`.
* Everything runs in background threads (watches with resourceVersion
  handling and a re-list when a watch expires). `stop()`, also registered
  with `atexit`, kills every process, removes the /etc/hosts block and the
  mount points it created; mounts live only in the processes' private mount
  namespaces, so they go with the processes.

What it does NOT do: no container images, runtimes, cgroups, resource
requests/limits, OOM kills, user namespaces, seccomp or capabilities; no
network namespaces, kube-proxy, Service IPs or NetworkPolicy; no DNS beyond
the /etc/hosts entries (no search domains, no Service names); no init or
sidecar containers, ephemeral containers, lifecycle hooks, image pulls,
volume expansion, CSI, node-pressure eviction or static pods; no Node
authorizer identity (it uses the admin credentials); no pod resize; the
host's kernel, filesystem and loopback are shared by every "pod" on every
"node".
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity

from .kube import ApiError, Informer, Kube, Obj, key_of, meta
from .paths import PREVIOUS_NODE, previous_node_binary
from .paths import binaries_dir as default_binaries_dir

log = logging.getLogger("controlplane.kubelet")

PROVISIONER = "testbed.dynamo.dev/hostpath"
STORAGE_CLASS = "standard"
ZONE_LABEL = "topology.kubernetes.io/zone"
HOSTNAME_LABEL = "kubernetes.io/hostname"
HOSTS_BEGIN = "# BEGIN dynamo-testbed-kubelet"
HOSTS_END = "# END dynamo-testbed-kubelet"
KUBERNETES_VERSION = "v1.35.4"

NODE_SETS: dict[str, list[tuple[str, str | None]]] = {
    "zones": [("testbed-zone-a", "zone-a"), ("testbed-zone-b", "zone-b"), ("testbed-zone-c", "zone-c")],
    "single": [("testbed-node", None)],
}

NODE_CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
NODE_ALLOCATABLE = {"cpu": "7800m", "memory": "31Gi", "pods": "110", "ephemeral-storage": "95Gi"}


@dataclass(frozen=True)
class ImageConfig:
    """What the harness knows of an image: the local binary it stands for
    and the image config of images/*.Dockerfile."""

    binary: str
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    user: int | None
    group: int | None


# Looked up in order: the first name an image's last path component
# starts with wins.
IMAGES = {
    PREVIOUS_NODE: ImageConfig(
        binary=PREVIOUS_NODE,
        entrypoint=["/usr/local/bin/dynamo-node"],
        cmd=["serve"],
        env={"DYNAMO_LISTEN": "0.0.0.0:7000", "DYNAMO_DATA_DIR": "/var/lib/dynamo"},
        user=10001,
        group=10001,
    ),
    "dynamo-node": ImageConfig(
        binary="dynamo-node",
        entrypoint=["/usr/local/bin/dynamo-node"],
        cmd=["serve"],
        env={"DYNAMO_LISTEN": "0.0.0.0:7000", "DYNAMO_DATA_DIR": "/var/lib/dynamo"},
        user=10001,
        group=10001,
    ),
    "dynamo-operator": ImageConfig(
        binary="dynamo-operator",
        entrypoint=["/usr/local/bin/dynamo-operator"],
        cmd=[],
        env={},
        user=10001,
        group=10001,
    ),
}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_config(image: str) -> ImageConfig | None:
    """The known image an image reference stands for (by its last path
    component, without tag or digest), if any."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    for name, config in IMAGES.items():
        if last.startswith(name):
            return config
    return None


def rewrite_wildcard(value: str, pod_ip: str) -> str:
    """`0.0.0.0:PORT` and `[::]:PORT` become `<pod IP>:PORT`: every process
    shares the host's network namespace, unlike real pods."""
    return value.replace("0.0.0.0:", f"{pod_ip}:").replace("[::]:", f"{pod_ip}:")


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced,
    `$$` escapes a `$`, unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(replace, value)


class EnvError(Exception):
    """An env source that is missing (CreateContainerConfigError)."""


def field_value(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    """A downward-API fieldRef value."""
    m = meta(pod)
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": m.get("name", ""),
        "metadata.namespace": m.get("namespace", ""),
        "metadata.uid": m.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path]
    found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if found:
        return (m.get(found.group(1)) or {}).get(found.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        values = m.get(path.split(".")[1]) or {}
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
    raise EnvError(f"unsupported fieldRef {path}")


def container_environment(
    pod: Obj,
    container: Obj,
    *,
    pod_ip: str,
    host_ip: str,
    config_map: Callable[[str, str], Obj | None],
    secret: Callable[[str, str], Obj | None],
    image_env: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment the kubelet gives a container: image env, then
    `envFrom`, then `env` (later wins), with `$(VAR)` expansion. Raises
    EnvError for a missing non-optional source."""
    namespace = meta(pod).get("namespace", "")
    env: dict[str, str] = dict(image_env or {})
    env.update(extra or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref = source["configMapRef"]
            obj = config_map(namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'configmap "{ref["name"]}" not found')
            data = dict(obj.get("data") or {})
        else:
            ref = source["secretRef"]
            obj = secret(namespace, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'secret "{ref["name"]}" not found')
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand_vars(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            obj = config_map(namespace, ref["name"])
            value = None if obj is None else (obj.get("data") or {}).get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f"couldn't find key {ref['key']} in ConfigMap {namespace}/{ref['name']}")
            env[name] = value
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            obj = secret(namespace, ref["name"])
            raw = None if obj is None else (obj.get("data") or {}).get(ref["key"])
            if raw is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}")
            env[name] = base64.b64decode(raw).decode()
        elif "resourceFieldRef" in source:
            env[name] = "0"
        else:
            raise EnvError(f"unsupported valueFrom in env {name}")
    return env


def atomic_write_dir(target: Path, files: dict[str, tuple[bytes, int]], *, gid: int | None) -> bool:
    """Writes `files` (relative path -> (content, mode)) into `target` the
    way the kubelet's atomic writer does: a timestamped directory, the
    `..data` symlink swapped to it, and one symlink per top-level name.
    Returns whether anything changed."""
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o755)
    data_link = target / "..data"
    if data_link.is_symlink():
        current = target / os.readlink(data_link)
        same = True
        existing: set[str] = set()
        for path in current.rglob("*"):
            if path.is_file():
                existing.add(str(path.relative_to(current)))
        if existing != set(files):
            same = False
        else:
            for rel, (content, mode) in files.items():
                path = current / rel
                if path.read_bytes() != content or (path.stat().st_mode & 0o7777) != mode:
                    same = False
                    break
        if same:
            return False
    else:
        current = None
    stamp = target / f"..{datetime.now(UTC).strftime('%Y_%m_%d_%H_%M_%S.%f')}{secrets.token_hex(3)}"
    stamp.mkdir()
    os.chmod(stamp, 0o755)
    for rel, (content, mode) in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
    tmp_link = target / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp.name, tmp_link)
    os.replace(tmp_link, data_link)
    top = {rel.split("/", 1)[0] for rel in files}
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in top:
            entry.unlink()
    for name in top:
        link = target / name
        if not link.is_symlink():
            os.symlink(f"..data/{name}", link)
    if current is not None and current.exists():
        shutil.rmtree(current, ignore_errors=True)
    return True


class HostsFile:
    """One marked block of /etc/hosts owned by this harness instance."""

    def __init__(self, path: Path, instance: str) -> None:
        self.path = path
        self.begin = f"{HOSTS_BEGIN} pid={os.getpid()} id={instance} (TEST HARNESS, removed on exit)"
        self.end = f"{HOSTS_END} pid={os.getpid()} id={instance}"
        self.entries: dict[str, tuple[str, list[str]]] = {}
        self.lock = threading.Lock()
        self.written: str | None = None

    @staticmethod
    def _strip_blocks(text: str, keep: Callable[[str], bool]) -> str:
        """Removes the blocks of harness instances for which `keep(begin
        line)` is false."""
        out: list[str] = []
        skipping = False
        for line in text.splitlines(keepends=True):
            if line.startswith(HOSTS_BEGIN) and not keep(line):
                skipping = True
                continue
            if skipping:
                if line.startswith(HOSTS_END):
                    skipping = False
                continue
            out.append(line)
        return "".join(out)

    def remove_stale_blocks(self) -> None:
        """Blocks left by harness processes that died without cleaning up."""

        def alive(line: str) -> bool:
            found = re.search(r"pid=(\d+)", line)
            if not found:
                return False
            try:
                os.kill(int(found.group(1)), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True

        with self.lock:
            text = self.path.read_text()
            cleaned = self._strip_blocks(text, alive)
            if cleaned != text:
                self._write(cleaned)

    def set(self, key: str, ip: str, names: list[str]) -> None:
        with self.lock:
            if self.entries.get(key) == (ip, names):
                return
            self.entries[key] = (ip, names)
            self._flush()

    def remove(self, key: str) -> None:
        with self.lock:
            if self.entries.pop(key, None) is not None:
                self._flush()

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            text = self.path.read_text()
            cleaned = self._strip_blocks(text, lambda line: not line.startswith(self.begin))
            if cleaned != text:
                self._write(cleaned)
            self.written = None

    def _flush(self) -> None:
        text = self.path.read_text()
        base = self._strip_blocks(text, lambda line: not line.startswith(self.begin))
        if self.entries:
            if base and not base.endswith("\n"):
                base += "\n"
            lines = [self.begin]
            for key in sorted(self.entries):
                ip, names = self.entries[key]
                lines.append(f"{ip} {' '.join(names)}")
            lines.append(self.end)
            base += "\n".join(lines) + "\n"
        if base != text:
            self._write(base)

    def _write(self, text: str) -> None:
        # In place (same inode): /etc/hosts may be a bind mount, and every
        # private mount namespace of the pods sees the same file.
        with open(self.path, "r+") as f:
            f.seek(0)
            f.write(text)
            f.truncate()


class MountPoints:
    """Mount-point paths created on the host, reference-counted and removed
    again (when still empty) once no process needs them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[Path, int] = {}  # top-most created path -> users

    def acquire(self, path: Path, *, is_file: bool) -> Path | None:
        with self.lock:
            if path.exists() or path.is_symlink():
                for top in self.created:
                    if path == top or top in path.parents:
                        self.created[top] += 1
                        return top
                return None
            top = path
            while not top.parent.exists():
                top = top.parent
            if is_file:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True)
            self.created[top] = self.created.get(top, 0) + 1
            log.info("created mount point %s on the host (removed when unused)", top)
            return top

    def release(self, top: Path | None) -> None:
        if top is None:
            return
        with self.lock:
            count = self.created.get(top, 0) - 1
            if count > 0:
                self.created[top] = count
                return
            self.created.pop(top, None)
            self._remove(top)

    def release_all(self) -> None:
        with self.lock:
            for top in list(self.created):
                self._remove(top)
            self.created.clear()

    @staticmethod
    def _remove(top: Path) -> None:
        try:
            if top.is_file():
                if top.stat().st_size == 0:
                    top.unlink()
                return
            # Only empty directories: never anything a process left there.
            for dirpath, _, _ in sorted(os.walk(top), key=lambda e: -len(e[0])):
                os.rmdir(dirpath)
        except OSError as error:
            log.warning("mount point %s not removed: %s", top, error)


class PodIPs:
    """Loopback addresses for pods, handed out round-robin."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        self.lock = threading.Lock()
        self.used: set[str] = set()
        # A random start: harnesses running side by side rarely collide.
        self.cursor = secrets.randbelow(max(self.network.num_addresses - 2, 1)) + 2

    def allocate(self) -> str:
        with self.lock:
            size = self.network.num_addresses
            for _ in range(size):
                candidate = self.network[self.cursor % size]
                self.cursor += 1
                if candidate.packed[-1] in (0, 1, 255) or str(candidate) in self.used:
                    continue
                self.used.add(str(candidate))
                return str(candidate)
        raise RuntimeError(f"no free pod IP in {self.network}")

    def release(self, ip: str | None) -> None:
        with self.lock:
            self.used.discard(ip or "")


@dataclass
class FakeNode:
    name: str
    zone: str | None
    host_ip: str
    heartbeat: bool = True
    failed: bool = False
    conditions_since: str = field(default_factory=now_rfc3339)


@dataclass
class ProbeState:
    kind: str
    spec: Obj
    successes: int = 0
    failures: int = 0
    next_at: float = 0.0
    result: bool | None = None


class ProbeError(Exception):
    pass


class FakeKubelet:
    """The kubelet stand-in for one node set on one control plane. See the
    module docstring; start() and stop() it, or use it as a context manager."""

    def __init__(
        self,
        kube: Kube,
        *,
        node_set: str = "single",
        state_dir: Path,
        binaries_dir: Path | None = None,
        apiserver_url: str | None = None,
        heartbeat_seconds: float = 10.0,
        backoff_base_seconds: float = 10.0,
        backoff_cap_seconds: float = 300.0,
        hosts_file: Path = Path("/etc/hosts"),
        pod_cidr: str = "127.42.0.0/16",
        dns_requires_service: bool = True,
    ) -> None:
        if node_set not in NODE_SETS:
            raise ValueError(f"unknown node set {node_set!r}; known: {sorted(NODE_SETS)}")
        self.kube = kube
        self.node_set = node_set
        self.state_dir = Path(state_dir)
        self.binaries_dir = binaries_dir or default_binaries_dir()
        self.apiserver_url = apiserver_url or kube.host
        self.heartbeat_seconds = heartbeat_seconds
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.dns_requires_service = dns_requires_service
        self.instance = secrets.token_hex(4)
        self.hosts = HostsFile(hosts_file, self.instance)
        self.mount_points = MountPoints()
        self.ips = PodIPs(pod_cidr)
        self.nodes: dict[str, FakeNode] = {
            name: FakeNode(name, zone, f"127.41.0.{i + 1}")
            for i, (name, zone) in enumerate(NODE_SETS[node_set])
        }
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()
        self.workers_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._informers: list[Informer] = []
        self._started = False
        self._stopped = False
        self._events_sent: dict[tuple[str, str, str], float] = {}
        self._digest_cache: dict[tuple[str, float], str] = {}
        found = {tool: shutil.which(tool) for tool in ("unshare", "setpriv", "nsenter", "mount")}
        missing = [tool for tool, path in found.items() if not path]
        if missing:
            raise RuntimeError(f"the harness needs {', '.join(missing)} (util-linux)")
        self.tools: dict[str, str] = {tool: path for tool, path in found.items() if path}
        self._log_handler: logging.Handler | None = None

    # --- lifecycle ----------------------------------------------------

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        return self.state_dir / "kubelet.log"

    def start(self) -> FakeKubelet:
        if os.geteuid() != 0:
            raise RuntimeError("the harness needs root (mount namespaces, /etc/hosts)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("volumes", "pods", "logs"):
            (self.state_dir / sub).mkdir(exist_ok=True)
        handler = logging.FileHandler(self.log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        logging.getLogger("harness.kube").addHandler(handler)
        self._log_handler = handler
        atexit.register(self.stop)
        self._started = True
        self.hosts.remove_stale_blocks()
        log.info("starting: node set %s, nodes %s, state %s", self.node_set, list(self.nodes), self.state_dir)
        self._ensure_storage_class()
        for node in self.nodes.values():
            self._register_node(node)
            self._renew(node)
        kube = self.kube
        self.pvcs = Informer(
            kube, "/api/v1/persistentvolumeclaims", self._on_pvc, name="pvcs", resync_seconds=30
        )
        self.pvs = Informer(kube, "/api/v1/persistentvolumes", self._on_pv, name="pvs", resync_seconds=30)
        self.config_maps = Informer(kube, "/api/v1/configmaps", self._on_config_source, name="configmaps")
        self.secrets = Informer(kube, "/api/v1/secrets", self._on_config_source, name="secrets")
        self.services = Informer(kube, "/api/v1/services", self._on_service, name="services")
        self.node_informer = Informer(kube, "/api/v1/nodes", self._on_node, name="nodes")
        self.pods = Informer(
            kube, "/api/v1/pods", self._on_pod, name="pods", field_selector="spec.nodeName!="
        )
        self._informers = [
            self.pvcs,
            self.pvs,
            self.config_maps,
            self.secrets,
            self.services,
            self.node_informer,
        ]
        for informer in self._informers:
            informer.start()
        for informer in self._informers:
            informer.wait_synced()
        # Pods last: their workers read the caches above.
        self._informers.append(self.pods)
        self.pods.start()
        self.pods.wait_synced()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        self._threads.append(heartbeat)
        log.info("started")
        return self

    def stop(self) -> None:
        """Kills every process, removes the /etc/hosts block and the mount
        points; idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        log.info("stopping")
        self._stop.set()
        for informer in self._informers:
            informer.stop()
        with self.workers_lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.join(15)
            if worker.is_alive():
                log.warning("pod worker %s did not stop in 15s", worker.key)
                worker.kill_now()
        self.hosts.clear()
        self.mount_points.release_all()
        log.info("stopped")
        if self._log_handler is not None:
            log.removeHandler(self._log_handler)
            logging.getLogger("harness.kube").removeHandler(self._log_handler)
            self._log_handler.close()
        with contextlib.suppress(Exception):  # the interpreter may be shutting down
            atexit.unregister(self.stop)

    # --- nodes --------------------------------------------------------

    def node_object(self, node: FakeNode) -> Obj:
        labels = {
            HOSTNAME_LABEL: node.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "testbed.dynamo.dev/fake-node": "true",
        }
        if node.zone:
            labels[ZONE_LABEL] = node.zone
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {},
            "status": self._node_status(node),
        }

    def _node_status(self, node: FakeNode) -> Obj:
        beat = now_rfc3339()

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": beat,
                "lastTransitionTime": node.conditions_since,
            }

        return {
            "capacity": NODE_CAPACITY,
            "allocatable": NODE_ALLOCATABLE,
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
                ),
                condition(
                    "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
                ),
                condition("Ready", "True", "KubeletReady", "testbed harness is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": node.host_ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": hashlib.md5(node.name.encode()).hexdigest(),
                "systemUUID": hashlib.md5(node.name.encode() + b"uuid").hexdigest(),
                "bootID": self.instance,
                "kernelVersion": os.uname().release,
                "osImage": "testbed harness (processes on the host)",
                "containerRuntimeVersion": "testbed://0.1.0",
                "kubeletVersion": KUBERNETES_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _register_node(self, node: FakeNode) -> None:
        try:
            self.kube.create("/api/v1/nodes", self.node_object(node))
            log.info("registered node %s (zone %s, host IP %s)", node.name, node.zone, node.host_ip)
        except ApiError as error:
            if error.status != 409:
                raise
            self.kube.patch(
                f"/api/v1/nodes/{node.name}/status",
                {"status": self._node_status(node)},
                patch_type="strategic",
            )

    def _renew(self, node: FakeNode) -> None:
        """One heartbeat: the node's Lease and its Ready condition."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.name}"
        lease = self.kube.get_opt(path)
        if lease is None:
            node_obj = self.kube.get(f"/api/v1/nodes/{node.name}")
            self.kube.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": node.name,
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "Node",
                                "name": node.name,
                                "uid": meta(node_obj)["uid"],
                            }
                        ],
                    },
                    "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": now},
                },
            )
        else:
            lease["spec"]["renewTime"] = now
            self.kube.replace(path, lease)
        self.kube.patch(
            f"/api/v1/nodes/{node.name}/status",
            {"status": {"conditions": self._node_status(node)["conditions"]}},
            patch_type="strategic",
        )

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            for node in list(self.nodes.values()):
                if not node.heartbeat or node.failed:
                    continue
                try:
                    self._renew(node)
                except Exception as error:  # noqa: BLE001 - keep beating
                    log.warning("heartbeat of %s failed: %s", node.name, error)

    def pause_heartbeat(self, node_name: str) -> None:
        """Stops renewing the node's Lease and Ready condition (the node
        lifecycle controller marks it Unknown after ~50 s); processes keep
        running (a network partition of the kubelet)."""
        self.nodes[node_name].heartbeat = False
        log.info("heartbeat of %s paused", node_name)

    def resume_heartbeat(self, node_name: str) -> None:
        node = self.nodes[node_name]
        node.heartbeat = True
        node.conditions_since = now_rfc3339()
        self._renew(node)
        log.info("heartbeat of %s resumed", node_name)

    def fail_node(self, node_name: str) -> None:
        """A powered-off machine: no more heartbeats, every process of the
        node killed with SIGKILL, nothing reported to the API."""
        node = self.nodes[node_name]
        node.failed = True
        log.info("node %s failed: killing its processes", node_name)
        for worker in self._workers_on(node_name):
            worker.node_lost()

    def remove_node(self, node_name: str) -> None:
        """Deletes the Node object; its pods' processes are killed."""
        self.kube.delete(f"/api/v1/nodes/{node_name}")

    def _workers_on(self, node_name: str) -> list[PodWorker]:
        with self.workers_lock:
            return [w for w in self.workers.values() if w.node_name == node_name]

    def _on_node(self, event: str, obj: Obj) -> None:
        name = meta(obj).get("name")
        if name in self.nodes and event == "DELETED":
            log.info("node %s was deleted: killing its pods' processes", name)
            self.nodes[name].failed = True
            for worker in self._workers_on(name):
                worker.node_lost()

    # --- storage ------------------------------------------------------

    def _ensure_storage_class(self) -> None:
        self.kube.apply(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": PROVISIONER,
                "reclaimPolicy": "Delete",
                "allowVolumeExpansion": True,
                "volumeBindingMode": "Immediate",
            },
            field_manager="testbed-kubelet",
        )

    def _on_pvc(self, event: str, pvc: Obj) -> None:
        if event == "DELETED":
            return
        if (pvc.get("spec") or {}).get("volumeName", "").startswith("pvc-"):
            self._resize(pvc)
            return
        m = meta(pvc)
        annotations = m.get("annotations") or {}
        wanted = annotations.get("volume.kubernetes.io/storage-provisioner") or annotations.get(
            "volume.beta.kubernetes.io/storage-provisioner"
        )
        if (
            wanted != PROVISIONER
            or m.get("deletionTimestamp")
            or (pvc.get("spec") or {}).get("volumeName")
            or (pvc.get("status") or {}).get("phase") not in (None, "Pending")
        ):
            return
        self._provision(pvc)

    def _resize(self, pvc: Obj) -> None:
        """Stands in for a CSI resizer and the kubelet's filesystem growth:
        a bound claim of this provisioner asking for more than its volume
        provides gets it (a hostPath directory has no size to change)."""
        wanted = ((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage")
        has = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
        if not wanted or not has or parse_quantity(wanted) <= parse_quantity(has):
            return
        m = meta(pvc)
        volume = pvc["spec"]["volumeName"]
        pv = self.pvs.get(volume)
        if (
            pv is None
            or (pv.get("metadata") or {}).get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
            != PROVISIONER
        ):
            return
        self.kube.patch(f"/api/v1/persistentvolumes/{volume}", {"spec": {"capacity": {"storage": wanted}}})
        self.kube.patch(
            f"/api/v1/namespaces/{m['namespace']}/persistentvolumeclaims/{m['name']}/status",
            {"status": {"capacity": {"storage": wanted}}},
        )
        log.info("resized %s (%s) from %s to %s", volume, key_of(pvc), has, wanted)
        self.event(pvc, "Normal", "VolumeResizeSuccessful", f"resized to {wanted}", component=PROVISIONER)

    def _provision(self, pvc: Obj) -> None:
        m = meta(pvc)
        spec = pvc.get("spec") or {}
        pv_name = f"pvc-{m['uid']}"
        if self.pvs.get(pv_name) is not None:
            return
        if spec.get("volumeMode", "Filesystem") != "Filesystem":
            self.event(
                pvc, "Warning", "ProvisioningFailed", "testbed provisioner supports Filesystem volumes only"
            )
            return
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        directory = self.state_dir / "volumes" / pv_name
        directory.mkdir(exist_ok=True)
        os.chmod(directory, 0o777)
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                "labels": {"testbed.dynamo.dev/claim-namespace": m["namespace"]},
            },
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": spec.get("storageClassName", STORAGE_CLASS),
                "volumeMode": "Filesystem",
                "hostPath": {"path": str(directory), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": m["namespace"],
                    "name": m["name"],
                    "uid": m["uid"],
                    "resourceVersion": m.get("resourceVersion"),
                },
            },
        }
        try:
            self.kube.create("/api/v1/persistentvolumes", pv)
        except ApiError as error:
            if error.status != 409:
                raise
            return
        log.info("provisioned %s for claim %s (%s) at %s", pv_name, key_of(pvc), size, directory)
        self.event(
            pvc,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {pv_name}",
            component=PROVISIONER,
        )

    def _on_pv(self, event: str, pv: Obj) -> None:
        m = meta(pv)
        if (m.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            return
        spec = pv.get("spec") or {}
        directory = Path((spec.get("hostPath") or {}).get("path", ""))
        volumes = self.state_dir / "volumes"
        if event == "DELETED":
            return
        phase = (pv.get("status") or {}).get("phase")
        if phase == "Released" and spec.get("persistentVolumeReclaimPolicy") == "Delete":
            if volumes in directory.parents:
                shutil.rmtree(directory, ignore_errors=True)
            self.kube.delete(f"/api/v1/persistentvolumes/{m['name']}", uid=m.get("uid"))
            log.info("deleted released volume %s and its directory %s", m["name"], directory)

    # --- config sources and DNS --------------------------------------

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return self.config_maps.get(f"{namespace}/{name}")

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.get(f"{namespace}/{name}")

    def _on_config_source(self, event: str, obj: Obj) -> None:
        kind = "secret" if "type" in obj or obj.get("kind") == "Secret" else "configMap"
        namespace, name = meta(obj).get("namespace"), str(meta(obj).get("name", ""))
        with self.workers_lock:
            workers = list(self.workers.values())
        for worker in workers:
            if worker.namespace == namespace and worker.uses(kind, name):
                worker.request_volume_sync()

    def _on_service(self, event: str, obj: Obj) -> None:
        with self.workers_lock:
            workers = [w for w in self.workers.values() if w.namespace == meta(obj).get("namespace")]
        for worker in workers:
            worker.refresh_dns()

    def dns_names(self, pod: Obj, ready: bool) -> list[str]:
        """The names cluster DNS would give this pod (hostname.subdomain)."""
        spec = pod.get("spec") or {}
        hostname, subdomain = spec.get("hostname"), spec.get("subdomain")
        namespace = meta(pod).get("namespace")
        if not hostname or not subdomain:
            return []
        if self.dns_requires_service:
            service = self.services.get(f"{namespace}/{subdomain}")
            if service is None:
                return []
            sspec = service.get("spec") or {}
            selector = sspec.get("selector") or {}
            labels = meta(pod).get("labels") or {}
            if sspec.get("clusterIP") != "None" or not selector:
                return []
            if any(labels.get(k) != v for k, v in selector.items()):
                return []
            if not ready and not sspec.get("publishNotReadyAddresses"):
                return []
        base = f"{hostname}.{subdomain}.{namespace}.svc"
        return [f"{base}.cluster.local", base]

    # --- pods ---------------------------------------------------------

    def _on_pod(self, event: str, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name not in self.nodes or self._stop.is_set():
            return
        uid = meta(pod)["uid"]
        with self.workers_lock:
            worker = self.workers.get(uid)
            if worker is None:
                if event == "DELETED" or uid in self.finished:
                    return
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    if meta(pod).get("deletionTimestamp"):
                        self.kube.delete(
                            f"/api/v1/namespaces/{meta(pod)['namespace']}/pods/{meta(pod)['name']}",
                            grace_period_seconds=0,
                            uid=uid,
                        )
                    return
                if self.nodes[node_name].failed:
                    return
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
        if event == "DELETED":
            worker.object_deleted()
        else:
            worker.update(pod)

    def _worker_done(self, worker: PodWorker) -> None:
        with self.workers_lock:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
            self.finished.add(worker.uid)

    def binary(self, name: str) -> Path:
        """The local binary standing for image binary `name`."""
        if name == PREVIOUS_NODE:
            return previous_node_binary()
        path = self.binaries_dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `cargo build -p dynamo-node -p dynamo-operator`")
        return path

    def image_id(self, image: str, binary: Path | None) -> str:
        if binary is None:
            return f"testbed://{image}"
        stat = binary.stat()
        key = (str(binary), stat.st_mtime)
        if key not in self._digest_cache:
            digest = hashlib.sha256()
            with open(binary, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            self._digest_cache[key] = digest.hexdigest()
        return f"testbed.dynamo.dev/local-binary/{binary.name}@sha256:{self._digest_cache[key]}"

    def pod_log_dir(self, pod: Obj) -> Path:
        m = meta(pod)
        return self.state_dir / "logs" / f"{m['namespace']}_{m['name']}_{m['uid']}"

    def pod_logs(self, namespace: str, name: str, *, tail: int = 50) -> str:
        """The last lines of every log of the pod(s) with that name (all
        restarts, all incarnations), newest last."""
        out = []
        for directory in sorted(
            (self.state_dir / "logs").glob(f"{namespace}_{name}_*"), key=lambda p: p.stat().st_mtime
        ):
            for path in sorted(directory.rglob("*.log"), key=lambda p: p.stat().st_mtime):
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {path.relative_to(self.state_dir)}\n" + "\n".join(lines))
        return "\n".join(out)

    def event(
        self,
        obj: Obj,
        type_: str,
        reason: str,
        message: str,
        *,
        field_path: str | None = None,
        component: str = "kubelet",
        host: str | None = None,
    ) -> None:
        """A core/v1 Event on `obj`, as the kubelet records them (the same
        reason and message at most once every 10 s per object)."""
        m = meta(obj)
        key = (m.get("uid", ""), reason, message)
        now = time.monotonic()
        if now - self._events_sent.get(key, -1e9) < 10:
            return
        self._events_sent[key] = now
        involved = {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", "Pod"),
            "name": m.get("name"),
            "namespace": m.get("namespace"),
            "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"),
        }
        if field_path:
            involved["fieldPath"] = field_path
        stamp = now_rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{m.get('name')}.{secrets.token_hex(8)}", "namespace": m.get("namespace")},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        try:
            self.kube.create(f"/api/v1/namespaces/{m.get('namespace')}/events", body)
        except Exception as error:  # noqa: BLE001 - events are best effort
            log.info("event %s on %s not recorded: %s", reason, key_of(obj), error)


class PodWorker(threading.Thread):
    """Runs one pod: volumes, its process, probes, status, termination."""

    def __init__(self, kubelet: FakeKubelet, pod: Obj) -> None:
        m = meta(pod)
        super().__init__(name=f"pod-{m['namespace']}/{m['name']}", daemon=True)
        self.kubelet = kubelet
        self.kube = kubelet.kube
        self.uid: str = m["uid"]
        self.namespace: str = m["namespace"]
        self.pod_name: str = m["name"]
        self.key = f"{self.namespace}/{self.pod_name}"
        self.node_name: str = pod["spec"]["nodeName"]
        self.host_ip = kubelet.nodes[self.node_name].host_ip
        self.pod = pod
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.deleted = False
        self.lost = False
        self.shutting_down = False
        self.volume_sync = False
        self.dns_dirty = True
        self.ip: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file: Any = None
        self.mount_tops: list[Path | None] = []
        self.pod_dir = kubelet.state_dir / "pods" / f"{self.namespace}_{self.pod_name}_{self.uid}"
        self.volume_dirs: dict[str, Path] = {}
        self.start_time = now_rfc3339()
        # container state
        container = (pod["spec"].get("containers") or [{}])[0]
        self.container_name = container.get("name", "")
        self.image = container.get("image", "")
        self.restart_count = 0
        self.container_id = ""
        self.started_at = ""
        self.started_mono = 0.0
        self.state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Obj = {}
        self.started = False
        self.ready = False
        self.phase = "Pending"
        self.binary: Path | None = None
        self.backoff: float | None = None
        self.restart_at: float | None = None
        self.probes: dict[str, ProbeState] = {}
        self.transitions: dict[str, tuple[str, str]] = {}
        self.last_status: Obj | None = None
        self.terminal = False
        self.tokens: dict[tuple[str, int], tuple[bytes, float]] = {}

    # --- signals from the kubelet's threads --------------------------

    def update(self, pod: Obj) -> None:
        with self.lock:
            self.pod = pod
        self.wake.set()

    def object_deleted(self) -> None:
        self.deleted = True
        self.wake.set()

    def node_lost(self) -> None:
        self.lost = True
        self.wake.set()

    def shutdown(self) -> None:
        self.shutting_down = True
        self.wake.set()

    def request_volume_sync(self) -> None:
        self.volume_sync = True
        self.wake.set()

    def refresh_dns(self) -> None:
        self.dns_dirty = True
        self.wake.set()

    def uses(self, kind: str, name: str) -> bool:
        for volume in self.current()["spec"].get("volumes") or []:
            if kind == "configMap" and (volume.get("configMap") or {}).get("name") == name:
                return True
            if kind == "secret" and (volume.get("secret") or {}).get("secretName") == name:
                return True
            for source in (volume.get("projected") or {}).get("sources") or []:
                if (source.get(kind) or {}).get("name") == name:
                    return True
        return False

    def current(self) -> Obj:
        with self.lock:
            return self.pod

    # --- main loop ----------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod worker %s crashed", self.key)
            self._kill(signal.SIGKILL)
        finally:
            self._cleanup()
            self.kubelet._worker_done(self)

    def _run(self) -> None:
        pod = self.current()
        spec = pod["spec"]
        containers = spec.get("containers") or []
        log.info("pod %s (uid %s) bound to %s", self.key, self.uid, self.node_name)
        self.ip = self.host_ip if spec.get("hostNetwork") else self.kubelet.ips.allocate()
        self.pod_dir.mkdir(parents=True, exist_ok=True)
        unsupported = None
        if len(containers) != 1:
            unsupported = (
                f"testbed kubelet runs pods with exactly one container, this one has {len(containers)}"
            )
        elif spec.get("initContainers"):
            unsupported = "testbed kubelet does not run init containers"
        if unsupported:
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": unsupported}}
            self.kubelet.event(pod, "Warning", "Failed", unsupported, host=self.node_name)
        self._report()
        while True:
            if self.shutting_down:
                self._kill(signal.SIGKILL)
                return
            if self.lost:
                # A dead node: its processes are gone and nothing reports,
                # but the pod object, its IP and its DNS entry stay until
                # someone deletes the pod (podgc, or a forced delete).
                self._kill(signal.SIGKILL)
                if self.deleted:
                    return
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            pod = self.current()
            if self.deleted:
                self._terminate(pod, grace=2, finalize=False)
                return
            if meta(pod).get("deletionTimestamp"):
                self._terminate(pod, grace=None, finalize=True)
                return
            if not unsupported and not self.terminal:
                self._step(pod)
            if self.dns_dirty:
                self.dns_dirty = False
                self._update_dns(pod)
            self._report()
            self.wake.wait(0.5)
            self.wake.clear()

    def _step(self, pod: Obj) -> None:
        if self.volume_sync:
            self.volume_sync = False
            try:
                self._prepare_volumes(pod, resync=True)
            except EnvError as error:
                log.info("pod %s: volume resync: %s", self.key, error)
        if self.process is None:
            if self.restart_at is not None and time.monotonic() < self.restart_at:
                return
            self._start_container(pod)
            return
        code = self.process.poll()
        if code is not None:
            self._container_exited(pod, code)
            return
        self._run_probes(pod)

    # --- volumes ------------------------------------------------------

    def _prepare_volumes(self, pod: Obj, *, resync: bool = False) -> None:
        """Materializes every volume; raises EnvError (FailedMount) while a
        source is missing."""
        spec = pod["spec"]
        security = spec.get("securityContext") or {}
        fs_group = security.get("fsGroup")
        for volume in spec.get("volumes") or []:
            name = volume["name"]
            target = self.pod_dir / "volumes" / name
            if "emptyDir" in volume:
                if not resync:
                    target.mkdir(parents=True, exist_ok=True)
                    os.chmod(target, 0o777)
                self.volume_dirs[name] = target
            elif (
                "configMap" in volume
                or "secret" in volume
                or "projected" in volume
                or "downwardAPI" in volume
            ):
                files = self._volume_files(pod, volume)
                if files is None:
                    continue
                if atomic_write_dir(target, files, gid=fs_group) and resync:
                    log.info("pod %s: volume %s updated", self.key, name)
                self.volume_dirs[name] = target
            elif "persistentVolumeClaim" in volume:
                if resync:
                    continue
                claim = volume["persistentVolumeClaim"]["claimName"]
                pvc = self.kubelet.pvcs.get(f"{self.namespace}/{claim}")
                if pvc is None:
                    raise EnvError(f'persistentvolumeclaim "{claim}" not found')
                if (pvc.get("status") or {}).get("phase") != "Bound":
                    raise EnvError(f'persistentvolumeclaim "{claim}" is not bound')
                pv = self.kubelet.pvs.get(pvc["spec"]["volumeName"])
                host_path = ((pv or {}).get("spec") or {}).get("hostPath", {}).get("path")
                if not host_path:
                    raise EnvError(
                        f"volume {pvc['spec']['volumeName']} of claim {claim} is not a hostPath volume"
                    )
                self.volume_dirs[name] = Path(host_path)
            elif "hostPath" in volume:
                path = Path(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") in ("DirectoryOrCreate",) and not path.exists():
                    path.mkdir(parents=True)
                self.volume_dirs[name] = path
            else:
                raise EnvError(f"volume {name}: this volume type is not supported by the testbed kubelet")

    def _volume_files(self, pod: Obj, volume: Obj) -> dict[str, tuple[bytes, int]] | None:
        if "configMap" in volume:
            source = volume["configMap"]
            return self._keyed_files(
                "configMap", source.get("name", ""), source, source.get("defaultMode", 0o644)
            )
        if "secret" in volume:
            source = volume["secret"]
            return self._keyed_files(
                "secret", source.get("secretName", ""), source, source.get("defaultMode", 0o644)
            )
        if "downwardAPI" in volume:
            source = volume["downwardAPI"]
            return self._downward_files(pod, source.get("items") or [], source.get("defaultMode", 0o644))
        projected = volume["projected"]
        mode = projected.get("defaultMode", 0o644)
        files: dict[str, tuple[bytes, int]] = {}
        for source in projected.get("sources") or []:
            if "configMap" in source:
                part = self._keyed_files(
                    "configMap", source["configMap"].get("name", ""), source["configMap"], mode
                )
            elif "secret" in source:
                part = self._keyed_files("secret", source["secret"].get("name", ""), source["secret"], mode)
            elif "downwardAPI" in source:
                part = self._downward_files(pod, source["downwardAPI"].get("items") or [], mode)
            elif "serviceAccountToken" in source:
                part = {
                    source["serviceAccountToken"]["path"]: (
                        self._token(pod, source["serviceAccountToken"]),
                        mode,
                    )
                }
            else:
                raise EnvError(f"projected source {sorted(source)} is not supported by the testbed kubelet")
            files.update(part or {})
        return files

    def _keyed_files(self, kind: str, name: str, source: Obj, mode: int) -> dict[str, tuple[bytes, int]]:
        obj = (
            self.kubelet.config_map(self.namespace, name)
            if kind == "configMap"
            else self.kubelet.secret(self.namespace, name)
        )
        if obj is None:
            if source.get("optional"):
                return {}
            raise EnvError(f'{kind.lower()} "{name}" not found')
        data: dict[str, bytes] = {}
        if kind == "configMap":
            data.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            data.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
        items = source.get("items")
        if not items:
            return {k: (v, mode) for k, v in data.items()}
        files = {}
        for item in items:
            if item["key"] not in data:
                if source.get("optional"):
                    continue
                raise EnvError(f'configmap/secret "{name}" has no key {item["key"]}')
            files[item["path"]] = (data[item["key"]], item.get("mode", mode))
        return files

    def _downward_files(self, pod: Obj, items: list[Obj], mode: int) -> dict[str, tuple[bytes, int]]:
        files = {}
        for item in items:
            if "fieldRef" in item:
                value = field_value(pod, item["fieldRef"]["fieldPath"], self.ip or "", self.host_ip)
            else:
                value = "0"
            files[item["path"]] = (value.encode(), item.get("mode", mode))
        return files

    def _token(self, pod: Obj, source: Obj) -> bytes:
        """A bound service-account token, reused until 80 % of its life
        (as the kubelet's token manager)."""
        cache_key = (source.get("audience", ""), source.get("expirationSeconds", 3607))
        cached = self.tokens.get(cache_key)
        if cached and time.monotonic() < cached[1]:
            return cached[0]
        account = pod["spec"].get("serviceAccountName", "default")
        body: Obj = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": max(source.get("expirationSeconds", 3607), 3600),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name, "uid": self.uid},
            },
        }
        if source.get("audience"):
            body["spec"]["audiences"] = [source["audience"]]
        try:
            answer = self.kube.create(
                f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token", body
            )
        except ApiError as error:
            raise EnvError(f"token of service account {account}: {error}") from error
        token = answer["status"]["token"].encode()
        lifetime = body["spec"]["expirationSeconds"]
        self.tokens[cache_key] = (token, time.monotonic() + 0.8 * lifetime)
        return token

    # --- the process --------------------------------------------------

    def _command(self, container: Obj) -> tuple[list[str], ImageConfig | None, Path | None]:
        """The container's argv, its known image if any, and the local
        binary it runs if it is a dynamo binary (this repository's, or the
        previous release's dynamo-node)."""
        image = image_config(container.get("image", ""))
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        if command:
            argv = command + args
        elif image is not None:
            argv = image.entrypoint + (args if args or "args" in container else image.cmd)
        elif args:
            argv = args
        else:
            raise EnvError(
                f"image {container.get('image')} is unknown to the testbed kubelet and the "
                "container has no command"
            )
        name = Path(argv[0]).name
        if name in ("dynamo-node", "dynamo-operator"):
            # The image's own build of its entrypoint (the previous release's
            # dynamo-node), else this repository's.
            entrypoint = image is not None and Path(image.entrypoint[0]).name == name
            local = self.kubelet.binary(image.binary if image and entrypoint else name)
            argv[0] = str(local)
            return argv, image, local
        resolved = shutil.which(argv[0])
        if resolved is None:
            raise EnvError(f'exec: "{argv[0]}": executable file not found in $PATH')
        argv[0] = resolved
        return argv, image, None

    def _start_container(self, pod: Obj) -> None:
        spec = pod["spec"]
        container = spec["containers"][0]
        try:
            self._prepare_volumes(pod)
        except EnvError as error:
            self.state = {"waiting": {"reason": "ContainerCreating"}}
            self.kubelet.event(
                pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {error}", host=self.node_name
            )
            self.restart_at = time.monotonic() + 2
            return
        try:
            argv, image, local = self._command(container)
            wrapper = self._wrapper(pod, container, image)
            env = container_environment(
                pod,
                container,
                pod_ip=self.ip or "",
                host_ip=self.host_ip,
                config_map=self.kubelet.config_map,
                secret=self.kubelet.secret,
                image_env=image.env if image else None,
                extra=self._base_env(pod),
            )
        except (EnvError, FileNotFoundError) as error:
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(error)}}
            self.kubelet.event(
                pod,
                "Warning",
                "Failed",
                f"Error: {error}",
                host=self.node_name,
                field_path=f"spec.containers{{{self.container_name}}}",
            )
            self.restart_at = time.monotonic() + 5
            return
        argv = [argv[0]] + [rewrite_wildcard(expand_vars(a, env), self.ip or "") for a in argv[1:]]
        env = {k: rewrite_wildcard(v, self.ip or "") for k, v in env.items()}
        self.binary = local
        log_dir = self.kubelet.pod_log_dir(pod) / self.container_name
        log_dir.mkdir(parents=True, exist_ok=True)
        if self.log_file is not None:
            self.log_file.close()
        self.log_file = open(log_dir / f"{self.restart_count}.log", "ab")  # noqa: SIM115 - kept open
        self.container_id = f"testbed://{secrets.token_hex(16)}"
        log.info("pod %s: starting %s (ip %s): %s", self.key, self.container_name, self.ip, shlex.join(argv))
        self.process = subprocess.Popen(
            wrapper + argv,
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_at = now_rfc3339()
        self.started_mono = time.monotonic()
        self.restart_at = None
        self.state = {"running": {"startedAt": self.started_at}}
        self.phase = "Running"
        self.ready = False
        self.started = False
        self.probes = {}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if probe:
                delay = probe.get("initialDelaySeconds", 0)
                self.probes[kind] = ProbeState(kind, probe, next_at=self.started_mono + delay)
        if "startupProbe" not in self.probes:
            self.started = True
        if "readinessProbe" not in self.probes:
            self.ready = self.started
        self.kubelet.event(
            pod,
            "Normal",
            "Started",
            f"Started container {self.container_name}",
            host=self.node_name,
            field_path=f"spec.containers{{{self.container_name}}}",
        )
        self.dns_dirty = True

    def _base_env(self, pod: Obj) -> dict[str, str]:
        url = self.kubelet.apiserver_url.removeprefix("https://")
        host, _, port = url.partition(":")
        spec = pod["spec"]
        hostname = spec.get("hostname") or self.pod_name
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": hostname[:63],
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port or "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": port or "443",
        }

    def _wrapper(self, pod: Obj, container: Obj, image: ImageConfig | None) -> list[str]:
        """unshare + sh script binding every volume at its mountPath, then
        setpriv to the pod's user with a parent-death signal."""
        tools = self.kubelet.tools
        mount = tools["mount"]
        spec = pod["spec"]
        pod_security = spec.get("securityContext") or {}
        security = container.get("securityContext") or {}
        lines = ["set -e"]
        for top in self.mount_tops:
            self.kubelet.mount_points.release(top)
        self.mount_tops = []
        mounts = sorted(container.get("volumeMounts") or [], key=lambda m: m["mountPath"].count("/"))
        for volume_mount in mounts:
            source = self.volume_dirs.get(volume_mount["name"])
            if source is None:
                raise EnvError(f"volume {volume_mount['name']} is not prepared")
            if volume_mount.get("subPath"):
                source = source / volume_mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            destination = Path(volume_mount["mountPath"])
            is_file = source.is_file()
            self.mount_tops.append(self.kubelet.mount_points.acquire(destination, is_file=is_file))
            q_src, q_dst = shlex.quote(str(source)), shlex.quote(str(destination))
            lines.append(f"[ -e {q_dst} ] || mkdir -p {q_dst}")
            lines.append(f"{mount} --bind {q_src} {q_dst}")
            if volume_mount.get("readOnly"):
                lines.append(f"{mount} -o remount,bind,ro {q_dst}")
        if security.get("readOnlyRootFilesystem"):
            lines.append(f"{mount} -o remount,bind,ro /")
        user = security.get("runAsUser", pod_security.get("runAsUser", image.user if image else None))
        group = security.get("runAsGroup", pod_security.get("runAsGroup", image.group if image else None))
        if (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")) and user in (None, 0):
            raise EnvError("container has runAsNonRoot and image will run as root")
        setpriv = [tools["setpriv"], "--pdeathsig", "KILL"]
        if user is not None:
            groups = [
                g
                for g in [pod_security.get("fsGroup"), *(pod_security.get("supplementalGroups") or [])]
                if g is not None
            ]
            setpriv += [f"--reuid={user}", f"--regid={group if group is not None else user}"]
            setpriv += [f"--groups={','.join(str(g) for g in groups)}"] if groups else ["--clear-groups"]
        lines.append(f'exec {shlex.join(setpriv)} -- "$@"')
        script = "\n".join(lines)
        (self.pod_dir / "start.sh").write_text(script + "\n")
        return [
            tools["unshare"],
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            script,
            f"pod:{self.pod_name}",
        ]

    def _container_exited(self, pod: Obj, code: int) -> None:
        assert self.process is not None
        finished = now_rfc3339()
        signal_number = -code if code < 0 else 0
        exit_code = 128 + signal_number if signal_number else code
        reason = "Completed" if exit_code == 0 else "Error"
        terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": self.started_at,
            "finishedAt": finished,
            "containerID": self.container_id,
        }
        if signal_number:
            terminated["signal"] = signal_number
        log.info("pod %s: container %s exited with %s", self.key, self.container_name, exit_code)
        self.process = None
        self.ready = False
        self.started = False
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        if not restart:
            self.state = {"terminated": terminated}
            self.phase = "Succeeded" if exit_code == 0 else "Failed"
            self.terminal = True
            return
        self.last_state = {"terminated": terminated}
        ran = time.monotonic() - self.started_mono
        if self.backoff is None or ran > 2 * self.kubelet.backoff_cap_seconds:
            # The kubelet restarts at once the first time, then backs off.
            self.backoff = min(self.kubelet.backoff_base_seconds, self.kubelet.backoff_cap_seconds)
            self.restart_at = time.monotonic()
            self.state = {"terminated": terminated}
        else:
            delay = self.backoff
            self.restart_at = time.monotonic() + delay
            self.backoff = min(self.backoff * 2, self.kubelet.backoff_cap_seconds)
            message = (
                f"back-off {delay:g}s restarting failed container={self.container_name} "
                f"pod={self.pod_name}_{self.namespace}({self.uid})"
            )
            self.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            self.kubelet.event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container "
                f"{self.container_name} in pod {self.pod_name}_{self.namespace}({self.uid})",
                host=self.node_name,
                field_path=f"spec.containers{{{self.container_name}}}",
            )
        self.restart_count += 1

    def _stop_process(self, grace: float, reason: str) -> int | None:
        """SIGTERM, up to `grace` seconds, SIGKILL; the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            log.info("pod %s: SIGTERM (%s), grace %ss", self.key, reason, grace)
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if process.poll() is None:
                log.info("pod %s: SIGKILL after %ss", self.key, grace)
                self._signal(signal.SIGKILL)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    log.error("pod %s: process %s survived SIGKILL", self.key, process.pid)
        return process.returncode

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.process.send_signal(sig)

    def _kill(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                log.error("pod %s: process %s survived %s", self.key, self.process.pid, sig.name)

    def kill_now(self) -> None:
        self._kill(signal.SIGKILL)

    def _terminate(self, pod: Obj, *, grace: float | None, finalize: bool) -> None:
        """Graceful termination of a deleted pod, then the final delete."""
        m = meta(pod)
        if grace is None:
            grace = m.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if self.process is not None:
            self.kubelet.event(
                pod,
                "Normal",
                "Killing",
                f"Stopping container {self.container_name}",
                host=self.node_name,
                field_path=f"spec.containers{{{self.container_name}}}",
            )
            code = self._stop_process(float(grace), "pod deleted")
            if code is not None:
                exit_code = 128 - code if code < 0 else code
                self.state = {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": self.started_at,
                        "finishedAt": now_rfc3339(),
                        "containerID": self.container_id,
                    }
                }
                self.phase = "Succeeded" if exit_code == 0 else "Failed"
            self.process = None
        elif not self.terminal:
            self.state = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now_rfc3339()}}
            self.phase = "Failed" if self.phase == "Pending" else self.phase
        self.ready = False
        self.started = False
        if not finalize:
            return
        self._report(force=True)
        self.kube.delete(
            f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}", grace_period_seconds=0, uid=self.uid
        )
        log.info("pod %s: terminated and deleted", self.key)

    def _cleanup(self) -> None:
        self._kill(signal.SIGKILL)
        for top in self.mount_tops:
            self.kubelet.mount_points.release(top)
        self.mount_tops = []
        self.kubelet.hosts.remove(self.uid)
        if self.ip and self.ip != self.host_ip:
            self.kubelet.ips.release(self.ip)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        # emptyDir, ConfigMap and Secret copies go with the pod; claims stay.
        shutil.rmtree(self.pod_dir, ignore_errors=True)

    # --- probes -------------------------------------------------------

    def _run_probes(self, pod: Obj) -> None:
        now = time.monotonic()
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            state = self.probes.get(kind)
            if state is None or now < state.next_at:
                continue
            if kind != "startupProbe" and not self.started:
                continue
            if kind == "startupProbe" and self.started:
                continue
            spec = state.spec
            state.next_at = now + spec.get("periodSeconds", 10)
            try:
                self._probe_once(pod, spec)
                ok, detail = True, ""
            except ProbeError as error:
                ok, detail = False, str(error)
            if ok:
                state.successes += 1
                state.failures = 0
            else:
                state.failures += 1
                state.successes = 0
            success_threshold = spec.get("successThreshold", 1)
            failure_threshold = spec.get("failureThreshold", 3)
            if not ok:
                name = {
                    "startupProbe": "Startup",
                    "livenessProbe": "Liveness",
                    "readinessProbe": "Readiness",
                }[kind]
                self.kubelet.event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    f"{name} probe failed: {detail}",
                    host=self.node_name,
                    field_path=f"spec.containers{{{self.container_name}}}",
                )
            if kind == "startupProbe":
                if ok and state.successes >= success_threshold:
                    self.started = True
                    if "readinessProbe" not in self.probes:
                        self.ready = True
                    for other in ("livenessProbe", "readinessProbe"):
                        if other in self.probes:
                            delay = self.probes[other].spec.get("initialDelaySeconds", 0)
                            self.probes[other].next_at = max(
                                self.probes[other].next_at, self.started_mono + delay
                            )
                elif state.failures >= failure_threshold:
                    self._restart_unhealthy(pod, "startup", spec)
                    return
            elif kind == "livenessProbe":
                if state.failures >= failure_threshold:
                    self._restart_unhealthy(pod, "liveness", spec)
                    return
            elif kind == "readinessProbe":
                if ok and state.successes >= success_threshold:
                    self.ready = True
                elif not ok and state.failures >= failure_threshold:
                    self.ready = False

    def _restart_unhealthy(self, pod: Obj, which: str, probe: Obj) -> None:
        message = f"Container {self.container_name} failed {which} probe, will be restarted"
        self.kubelet.event(
            pod,
            "Normal",
            "Killing",
            message,
            host=self.node_name,
            field_path=f"spec.containers{{{self.container_name}}}",
        )
        grace = probe.get(
            "terminationGracePeriodSeconds", pod["spec"].get("terminationGracePeriodSeconds", 30)
        )
        code = self._stop_process(float(grace), f"{which} probe failed")
        self._container_exited(pod, code if code is not None else 137)

    def _probe_once(self, pod: Obj, probe: Obj) -> None:
        timeout = probe.get("timeoutSeconds", 1)
        container = pod["spec"]["containers"][0]
        if "httpGet" in probe:
            action = probe["httpGet"]
            port = self._port(container, action["port"])
            host = action.get("host") or self.ip or "127.0.0.1"
            path = action.get("path", "/")
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
            headers.setdefault("User-Agent", "kube-probe/1.35")
            try:
                if action.get("scheme", "HTTP").upper() == "HTTPS":
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                        host, port, timeout=timeout, context=context
                    )
                else:
                    connection = http.client.HTTPConnection(host, port, timeout=timeout)
                try:
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    body = response.read(1024)
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                raise ProbeError(
                    f'Get "{action.get("scheme", "HTTP").lower()}://{host}:{port}{path}": {error}'
                ) from error
            if not 200 <= response.status < 400:
                raise ProbeError(
                    f"HTTP probe failed with statuscode: {response.status} "
                    f"{body.decode(errors='replace')[:200]}"
                )
        elif "tcpSocket" in probe:
            port = self._port(container, probe["tcpSocket"]["port"])
            try:
                socket.create_connection((self.ip or "127.0.0.1", port), timeout=timeout).close()
            except OSError as error:
                raise ProbeError(f"dial tcp {self.ip}:{port}: {error}") from error
        elif "exec" in probe:
            if self.process is None:
                raise ProbeError("container is not running")
            command = [self.kubelet.tools["nsenter"], "--target", str(self.process.pid), "--mount", "--"]
            command += probe["exec"].get("command") or []
            try:
                result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as error:
                raise ProbeError(f"command timed out after {timeout}s") from error
            if result.returncode != 0:
                raise ProbeError(f"command exited with {result.returncode}: {result.stdout[-200:]!r}")
        else:
            raise ProbeError(f"probe type {sorted(probe)} is not supported by the testbed kubelet")

    @staticmethod
    def _port(container: Obj, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for entry in container.get("ports") or []:
            if entry.get("name") == port:
                return int(entry["containerPort"])
        raise ProbeError(f"named port {port} not found in the container's ports")

    # --- status and DNS ----------------------------------------------

    def _update_dns(self, pod: Obj) -> None:
        if self.ip is None or self.lost:
            return
        names = self.kubelet.dns_names(pod, self.ready)
        if names:
            self.kubelet.hosts.set(self.uid, self.ip, names)
        else:
            self.kubelet.hosts.remove(self.uid)

    def _condition(self, kind: str, ok: bool, reason: str | None = None) -> Obj:
        status = "True" if ok else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != status:
            self.transitions[kind] = (status, now_rfc3339())
        condition: Obj = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": self.transitions[kind][1],
        }
        if reason and not ok:
            condition["reason"] = reason
        return condition

    def _status(self, pod: Obj) -> Obj:
        running = "running" in self.state
        container_ready = self.ready and running
        gates_ok = True
        existing = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
        for gate in pod["spec"].get("readinessGates") or []:
            if (existing.get(gate["conditionType"]) or {}).get("status") != "True":
                gates_ok = False
        owned = {"PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"}
        conditions = [c for t, c in existing.items() if t not in owned]
        conditions += [
            self._condition("PodReadyToStartContainers", self.ip is not None),
            self._condition("Initialized", True),
            self._condition("ContainersReady", container_ready, "ContainersNotReady"),
            self._condition(
                "Ready",
                container_ready and gates_ok,
                "ContainersNotReady" if not container_ready else "ReadinessGatesNotReady",
            ),
        ]
        container_status: Obj = {
            "name": self.container_name,
            "image": self.image,
            "imageID": self.kubelet.image_id(self.image, self.binary) if self.container_id else "",
            "ready": container_ready,
            "started": self.started and running,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            container_status["containerID"] = self.container_id
        status: Obj = {
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": [container_status],
        }
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        generation = meta(pod).get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        return status

    def _report(self, *, force: bool = False) -> None:
        if self.lost or (self.shutting_down and not force):
            return
        pod = self.current()
        status = self._status(pod)
        if status == self.last_status and not force:
            return
        ready_changed = (self.last_status or {}).get("conditions") != status["conditions"]
        try:
            self.kube.patch(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}/status",
                {"metadata": {"uid": self.uid}, "status": status},
                patch_type="merge",
            )
            self.last_status = status
        except ApiError as error:
            if error.status in (404, 409):
                return
            log.warning("pod %s: status not written: %s", self.key, error)
        if ready_changed:
            self.dns_dirty = True
