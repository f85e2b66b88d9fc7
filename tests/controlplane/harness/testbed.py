"""`Testbed`: one test's control plane, kubelet stand-in and operator, with
the helpers the scenarios use. conftest.py makes one per test and closes it
(operator processes, pods' processes, /etc/hosts block, mount points, the
plane) whatever the outcome."""

from __future__ import annotations

import base64
import http.client
import logging
import signal
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from . import diagnostics
from .controlplane import ControlPlane
from .kube import Kube, Obj, meta, namespace_of
from .kubelet import FakeKubelet
from .operator import OperatorInstall, OperatorProcess
from .paths import product_root
from .wait import wait_until

log = logging.getLogger("controlplane.testbed")

DYNAMO_API = "/apis/kv.dynamo.dev/v1alpha1"
# The label the operator puts on every object of a cluster, with its name.
INSTANCE_LABEL = "app.kubernetes.io/instance"
# Client (`/v1/kv`) and internal (node-to-node, admin) ports of a node pod.
CLIENT_PORT = 7000
INTERNAL_PORT = 7001


class Testbed:
    __test__ = False  # not a test class for pytest

    def __init__(self, directory: Path, bin_dir: Path) -> None:
        self.directory = directory
        self.bin_dir = bin_dir
        self.plane: ControlPlane | None = None
        self.kube: Kube | None = None
        self.kubelet: FakeKubelet | None = None
        self.operator: OperatorInstall | None = None
        self.namespaces: set[str] = {"default"}
        self.timings: dict[str, float] = {}
        # Decoded keys of the clusters' auth Secrets, by (namespace, cluster).
        self._auth_secrets: dict[tuple[str, str], dict[str, str]] = {}
        self._auth_lock = threading.Lock()
        # HTTPS for node requests (clusters with spec.tls), else plain HTTP.
        self.node_tls: ssl.SSLContext | None = None

    # --- setup --------------------------------------------------------

    def start_plane(self) -> ControlPlane:
        began = time.monotonic()
        self.plane = ControlPlane.start(self.directory / "plane", self.bin_dir)
        self.kube = Kube(self.plane.kubeconfig)
        self.timings["control plane start"] = time.monotonic() - began
        return self.plane

    def start_nodes(self, node_set: str = "single", **options: Any) -> FakeKubelet:
        """The kubelet stand-in for `zones` or `single` (see kubelet.py)."""
        assert self.kube is not None and self.plane is not None
        began = time.monotonic()
        self.kubelet = FakeKubelet(
            self.kube,
            node_set=node_set,
            state_dir=self.directory / "kubelet",
            apiserver_url=self.plane.apiserver_url,
            **options,
        ).start()
        # Schedulable: the node lifecycle controller removed the not-ready taint.
        wait_until("nodes without the not-ready taint", self._nodes_schedulable, 60, 0.5)
        self.timings["nodes ready"] = time.monotonic() - began
        return self.kubelet

    def _nodes_schedulable(self) -> bool:
        assert self.kube is not None and self.kubelet is not None
        for name in self.kubelet.nodes:
            node = self.kube.get(f"/api/v1/nodes/{name}")
            if any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints") or []):
                return False
        return True

    def install_operator(
        self, values: dict[str, Any] | None = None, *, wait_leading: bool = True
    ) -> OperatorProcess:
        """The chart's objects, then one operator process (see operator.py)."""
        assert self.kube is not None and self.plane is not None
        began = time.monotonic()
        self.operator = OperatorInstall(self.kube, self.plane, self.directory / "operator", values=values)
        self.operator.install()
        self.namespaces.add(self.operator.namespace)
        process = self.operator.start()
        if wait_leading:
            self.operator.wait_leading(process)
        self.timings["operator installed and leading"] = time.monotonic() - began
        return process

    def close(self) -> None:
        """Stops everything this test started, in reverse order. SIGINT and
        SIGTERM wait until it is done (a second Ctrl-C must not leave
        processes, mounts or /etc/hosts entries behind)."""
        deferred: list[int] = []
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda number, _frame: deferred.append(number))
        try:
            steps = [
                ("operator", self.operator.stop_all if self.operator else None),
                ("kubelet", self.kubelet.stop if self.kubelet else None),
                ("client", self.kube.close if self.kube else None),
                ("control plane", self.plane.stop if self.plane else None),
            ]
            errors = []
            for name, step in steps:
                if step is None:
                    continue
                try:
                    step()
                except Exception as error:
                    log.exception("stopping the %s failed", name)
                    errors.append(f"{name}: {error}")
            if errors:
                raise RuntimeError("cleanup failed: " + "; ".join(errors))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if deferred:
                raise KeyboardInterrupt(f"signal {deferred[0]} during cleanup")

    # --- helpers ------------------------------------------------------

    def kubectl(self, *args: str, timeout: float = 60.0) -> str:
        """The built kubectl as the admin, run from the repository root."""
        assert self.plane is not None
        return self.plane.kubectl(*args, timeout=timeout).stdout

    def apply_file(self, path: str | Path, *, namespace: str | None = None, server_side: bool = True) -> str:
        """`kubectl apply [--server-side] [-n NS] -f PATH`."""
        args = ["apply"]
        if server_side:
            args.append("--server-side")
        if namespace:
            args += ["-n", namespace]
            self.namespaces.add(namespace)
        args += ["-f", str(Path(path) if Path(path).is_absolute() else product_root() / path)]
        return self.kubectl(*args)

    def cluster(self, namespace: str, name: str) -> Obj:
        assert self.kube is not None
        return self.kube.get(f"{DYNAMO_API}/namespaces/{namespace}/dynamoclusters/{name}")

    @staticmethod
    def condition(obj: Obj, kind: str) -> Obj | None:
        return next(
            (c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None
        )

    def wait_condition(
        self, namespace: str, name: str, kind: str, status: str = "True", *, timeout: float = 120.0
    ) -> Obj:
        """Waits until the DynamoCluster's condition `kind` has `status`."""

        def reached() -> Obj | None:
            cluster = self.cluster(namespace, name)
            found = self.condition(cluster, kind)
            return cluster if found and found.get("status") == status else None

        return wait_until(f"DynamoCluster {namespace}/{name} condition {kind}={status}", reached, timeout)

    def pods(self, namespace: str, selector: str | None = None) -> list[Obj]:
        assert self.kube is not None
        return self.kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector).get("items", [])

    def node_pods(self, namespace: str, cluster: str) -> list[Obj]:
        """The node pods of DynamoCluster `cluster`, by name."""
        return sorted(self.pods(namespace, f"{INSTANCE_LABEL}={cluster}"), key=lambda p: meta(p)["name"])

    def ready_cluster(self, namespace: str, cluster: str, nodes: int) -> list[Obj] | None:
        """The node pods of `cluster` once it is Ready with `nodes` Ready pods."""
        ready = self.condition(self.cluster(namespace, cluster), "Ready")
        pods = self.node_pods(namespace, cluster)
        if ready and ready.get("status") == "True" and len(pods) == nodes and all(map(self.pod_ready, pods)):
            return pods
        return None

    @staticmethod
    def pod_ready(pod: Obj) -> bool:
        status = pod.get("status") or {}
        return status.get("phase") == "Running" and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )

    def auth_secret(self, namespace: str, cluster: str, *, refresh: bool = False) -> dict[str, str]:
        """The decoded keys of the auth Secret the operator generated for
        `cluster` (`<cluster>-auth`: `admin-token`, `peer-token`,
        `client-token`), read once and cached unless `refresh`."""
        assert self.kube is not None
        key = (namespace, cluster)
        with self._auth_lock:
            cached = self._auth_secrets.get(key)
        if cached is not None and not refresh:
            return cached
        secret = self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{cluster}-auth")
        keys = {name: base64.b64decode(value).decode() for name, value in (secret.get("data") or {}).items()}
        with self._auth_lock:
            self._auth_secrets[key] = keys
        return keys

    def client_token(self, pod: Obj, *, refresh: bool = False) -> str:
        """The client token of the cluster `pod` belongs to (its instance
        label), from the cluster's generated auth Secret."""
        cluster = (meta(pod).get("labels") or {})[INSTANCE_LABEL]
        return self.auth_secret(namespace_of(pod), cluster, refresh=refresh)["client-token"]

    def node_http(
        self,
        pod: Obj | str,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        port: int = CLIENT_PORT,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """One request to a node's HTTP API at its pod IP (loopback).

        For a pod object the request carries `Authorization: Bearer
        <client-token>` of the pod's cluster unless `headers` has an
        Authorization header; a 401 reads the auth Secret again and repeats
        the request once (a cluster deleted and created again under the
        same name has new tokens). A pod IP (a string) gets only `headers`.
        """
        sent = dict(headers or {})
        if isinstance(pod, str):
            return self._http(pod, port, method, path, body, sent, timeout)
        ip = pod["status"]["podIP"]
        if any(name.lower() == "authorization" for name in sent):
            return self._http(ip, port, method, path, body, sent, timeout)
        bearer = {**sent, "Authorization": f"Bearer {self.client_token(pod)}"}
        status, answer = self._http(ip, port, method, path, body, bearer, timeout)
        if status == 401:
            bearer["Authorization"] = f"Bearer {self.client_token(pod, refresh=True)}"
            status, answer = self._http(ip, port, method, path, body, bearer, timeout)
        return status, answer

    def _http(
        self,
        ip: str,
        port: int,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, bytes]:
        connection = (
            http.client.HTTPSConnection(ip, port, timeout=timeout, context=self.node_tls)
            if self.node_tls
            else http.client.HTTPConnection(ip, port, timeout=timeout)
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def kill_operator(self, process: OperatorProcess | None = None) -> OperatorProcess:
        """SIGKILL of an operator process (the first running one by default)."""
        assert self.operator is not None
        process = process or next(p for p in self.operator.processes if p.alive())
        process.kill()
        return process

    def start_operator(self) -> OperatorProcess:
        """Another operator replica (it waits for the Lease)."""
        assert self.operator is not None
        return self.operator.start()

    def diagnostics(self) -> str:
        if self.kube is None:
            return "(no control plane)"
        return diagnostics.report(
            self.kube,
            namespaces=sorted(self.namespaces),
            kubelet=self.kubelet,
            operators=self.operator.processes if self.operator else (),
            plane=self.plane,
        )

    def artifacts(self) -> str:
        return f"artifacts (logs, state) in {self.directory}"

    def describe(self, namespace: str, name: str) -> str:
        obj = self.cluster(namespace, name)
        return f"{name}: {meta(obj).get('generation')} {obj.get('status')}"
