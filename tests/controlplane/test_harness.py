"""Checks of the kubelet stand-in itself, with a small HTTP server written in
Python as the container (the host's python3; no dynamo binary involved):
nodes and leases, a StatefulSet pod with env sources, ConfigMap and PVC
volumes, a readiness probe, /etc/hosts names, ConfigMap updates, graceful
deletion with finalization, the claim's directory outliving the pod, a crash
loop with back-off, volume reclaim, and the cleanup on stop()."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import socket
import threading
import urllib.request
import uuid
from pathlib import Path

import urllib3

from harness.kubelet import HOSTS_BEGIN, NODE_SETS
from harness.testbed import Testbed
from harness.wait import wait_until

NS = "default"

# The "image": prints its identity, serves GET /env, /file?path=, /ready.
SERVER = r"""
import json, os, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
host, port = os.environ["LISTEN"].rsplit(":", 1)
with open("/srv/data/marker", "a") as f:
    f.write(os.environ["POD_NAME"] + "\n")
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/env":
            body = json.dumps({"env": dict(os.environ), "uid": os.getuid(), "gid": os.getgid(),
                               "groups": os.getgroups(), "argv": sys.argv}).encode()
        elif url.path == "/file":
            try:
                body = open(urllib.parse.parse_qs(url.query)["path"][0], "rb").read()
            except OSError as error:
                body = f"error: {error}".encode()
        elif url.path == "/write":
            try:
                open(urllib.parse.parse_qs(url.query)["path"][0], "w").write("x")
                body = b"written"
            except OSError as error:
                body = f"error: {error}".encode()
        elif url.path == "/ready":
            body = b"ok"
        else:
            self.send_response(404); self.end_headers(); return
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
print("serving on", host, port, "argv", sys.argv, flush=True)
HTTPServer((host, int(port)), Handler).serve_forever()
"""


def objects(python: str) -> list[dict]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": NS},
            "data": {"greeting": "hello", "other": "x"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "web-secret", "namespace": NS},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 8000}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "serviceName": "web",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "nodeSelector": {"topology.kubernetes.io/zone": "zone-b"},
                        "terminationGracePeriodSeconds": 5,
                        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                        "containers": [
                            {
                                "name": "web",
                                "image": "example.org/python-web:1",
                                "command": [python, "-c", SERVER],
                                "args": ["--listen", "0.0.0.0:8000"],
                                "ports": [{"name": "http", "containerPort": 8000}],
                                "env": [
                                    {"name": "LISTEN", "value": "0.0.0.0:8000"},
                                    {
                                        "name": "POD_NAME",
                                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                    },
                                    {
                                        "name": "POD_IP",
                                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                    },
                                    {
                                        "name": "NODE",
                                        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                    },
                                    {
                                        "name": "TOKEN",
                                        "valueFrom": {"secretKeyRef": {"name": "web-secret", "key": "token"}},
                                    },
                                    {
                                        "name": "GREETING",
                                        "valueFrom": {
                                            "configMapKeyRef": {"name": "web-config", "key": "greeting"}
                                        },
                                    },
                                    {"name": "COMBINED", "value": "$(POD_NAME)-$(GREETING)"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": "http"},
                                    "periodSeconds": 1,
                                },
                                "securityContext": {"readOnlyRootFilesystem": True},
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/web-config"},
                                    {"name": "data", "mountPath": "/srv/data"},
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "config",
                                "configMap": {
                                    "name": "web-config",
                                    "items": [{"key": "greeting", "path": "greeting"}],
                                },
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    ]


def test_kubelet_stand_in(testbed: Testbed) -> None:
    kubelet = testbed.start_nodes("zones", backoff_cap_seconds=2)
    kube = testbed.kube
    assert kube is not None

    # Nodes: labelled, Ready, untainted, with renewed Leases.
    for name, zone in NODE_SETS["zones"]:
        node = kube.get(f"/api/v1/nodes/{name}")
        assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
        assert kube.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
    assert kube.get("/apis/storage.k8s.io/v1/storageclasses/standard")["volumeBindingMode"] == "Immediate"

    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    assert python
    wait_until(
        "default ServiceAccount",
        lambda: kube.get_opt(f"/api/v1/namespaces/{NS}/serviceaccounts/default"),
        30,
        0.2,
    )
    for obj in objects(python):
        kube.apply(obj, field_manager="test")

    def running_pod() -> dict | None:
        pod = kube.get_opt(f"/api/v1/namespaces/{NS}/pods/web-0")
        return pod if pod and testbed.pod_ready(pod) else None

    pod = wait_until("web-0 Running and ready", running_pod, 60, 0.5)
    status = pod["status"]
    assert pod["spec"]["nodeName"] == "testbed-zone-b"
    assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("127.42.0.0/16")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == kubelet.nodes["testbed-zone-b"].host_ip
    container = status["containerStatuses"][0]
    assert container["ready"] and container["started"] and "running" in container["state"]
    assert container["containerID"].startswith("testbed://")
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {
        "PodScheduled": "True",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }

    # Name resolution through /etc/hosts, both forms.
    hosts = Path("/etc/hosts").read_text()
    assert HOSTS_BEGIN in hosts
    for name in ("web-0.web.default.svc", "web-0.web.default.svc.cluster.local"):
        assert socket.gethostbyname(name) == status["podIP"]

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"http://web-0.web.default.svc:8000{path}", timeout=5) as response:
            return response.read()

    info = json.loads(get("/env"))
    env = info["env"]
    assert env["POD_NAME"] == "web-0" and env["POD_IP"] == status["podIP"] and env["NODE"] == "testbed-zone-b"
    assert env["TOKEN"] == "s3cret" and env["GREETING"] == "hello" and env["COMBINED"] == "web-0-hello"
    assert env["LISTEN"] == f"{status['podIP']}:8000", "0.0.0.0: is rewritten to the pod IP"
    assert info["argv"][-2:] == ["--listen", f"{status['podIP']}:8000"]
    assert info["uid"] == 10001 and info["gid"] == 10001 and 10001 in info["groups"]
    assert get("/file?path=/etc/web-config/greeting") == b"hello"
    assert get("/file?path=/etc/web-config/other").startswith(b"error"), "items select keys"
    # A name no host path can already hold, so the only possible refusal is the read-only root.
    probe = f"/tmp/readonly-probe-{uuid.uuid4().hex}"
    assert b"Read-only file system" in get(f"/write?path={probe}"), "readOnlyRootFilesystem"
    assert get("/write?path=/srv/data/y") == b"written"

    # A ConfigMap change reaches the mounted file.
    kube.patch(f"/api/v1/namespaces/{NS}/configmaps/web-config", {"data": {"greeting": "changed"}})
    wait_until(
        "updated ConfigMap file", lambda: get("/file?path=/etc/web-config/greeting") == b"changed", 15, 0.3
    )

    # The claim: bound to a provisioned hostPath PV.
    pvc = kube.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-web-0")
    assert pvc["status"]["phase"] == "Bound"
    pv = kube.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    directory = Path(pv["spec"]["hostPath"]["path"])
    assert (directory / "marker").read_text() == "web-0\n"

    # Graceful deletion: the harness SIGTERMs and finalizes; the StatefulSet
    # makes a new web-0 that finds the same claim.
    old_uid = pod["metadata"]["uid"]
    kube.delete(f"/api/v1/namespaces/{NS}/pods/web-0")

    def replaced() -> dict | None:
        new = running_pod()
        return new if new and new["metadata"]["uid"] != old_uid else None

    new_pod = wait_until("web-0 replaced and ready", replaced, 60, 0.5)
    assert (directory / "marker").read_text() == "web-0\nweb-0\n"
    assert socket.gethostbyname("web-0.web.default.svc") == new_pod["status"]["podIP"]

    # A crash loop: restarted with back-off, CrashLoopBackOff meanwhile.
    kube.create(
        f"/api/v1/namespaces/{NS}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "crasher"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "c", "image": "example.org/sh", "command": ["sh", "-c", "echo crashing; exit 3"]}
                ],
            },
        },
    )

    def crash_looping() -> bool:
        cs = (kube.get(f"/api/v1/namespaces/{NS}/pods/crasher")["status"].get("containerStatuses") or [{}])[0]
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        return (
            cs.get("restartCount", 0) >= 2
            and waiting.get("reason") == "CrashLoopBackOff"
            and last.get("exitCode") == 3
        )

    wait_until("crasher in CrashLoopBackOff", crash_looping, 40, 0.3)
    assert "crashing" in kubelet.pod_logs(NS, "crasher")

    # Reclaim: without the StatefulSet and the claim, the volume goes.
    kube.delete(f"/apis/apps/v1/namespaces/{NS}/statefulsets/web", propagation="Foreground")
    wait_until("web-0 gone", lambda: kube.get_opt(f"/api/v1/namespaces/{NS}/pods/web-0") is None, 30, 0.5)
    kube.delete(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-web-0")
    wait_until(
        "PV deleted",
        lambda: kube.get_opt(f"/api/v1/persistentvolumes/{pv['metadata']['name']}") is None,
        60,
        0.5,
    )
    assert not directory.exists()

    # stop(): no process, no hosts block, no mount point left.
    pids = [w.process.pid for w in kubelet.workers.values() if w.process is not None]
    kubelet.stop()
    assert HOSTS_BEGIN not in Path("/etc/hosts").read_text()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert not Path("/srv/data").exists() and not Path("/etc/web-config").exists()

    # close() ends the client's open watches: kube-apiserver's graceful
    # shutdown would otherwise wait for each (over 10 s per test).
    opened, ended = threading.Event(), threading.Event()

    def watch() -> None:
        try:
            for _ in kube.watch("/api/v1/namespaces", resource_version=""):
                opened.set()
        except (urllib3.exceptions.HTTPError, OSError):  # the stream cut short
            pass
        finally:
            ended.set()

    threading.Thread(target=watch, daemon=True).start()
    assert opened.wait(30), "the watch sent the namespaces"
    kube.close()
    assert ended.wait(30), "close() left the watch open"


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def test_hosts_entries_need_no_leftovers() -> None:
    """Guard: no harness block of a dead process stays in /etc/hosts."""
    text = Path("/etc/hosts").read_text()
    for line in text.splitlines():
        if line.startswith(HOSTS_BEGIN):
            pid = int(line.split("pid=")[1].split()[0])
            assert pid == os.getpid() or Path(f"/proc/{pid}").exists(), f"stale block: {line}"
