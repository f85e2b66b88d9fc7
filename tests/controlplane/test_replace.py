"""Day two: a node whose volume is lost, and a node whose machine is gone.

A 3-node cluster (N=3, so every node holds every key) with acknowledged
writes. First a lost volume: the node process is frozen, its data directory
emptied and the process killed; the kubelet restarts it on the empty
directory, the ConfigMap says the cluster exists, and the node receives every
partition from the other two before it counts them as its own. Then a
powered-off machine: the operator's status names the member that blocks the
ring and says how to replace it; `kv.dynamo.dev/replace=true` on the pod makes
the operator delete its claim and the pod, and the replacement (same name, new
volume, another machine) receives its data from the others. Every
acknowledged write reads back with r=3 at the end of each part.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from harness.kube import Obj, meta
from harness.testbed import Testbed
from harness.wait import wait_until

NS = "default"
NAME = "rep"
READY_TIMEOUT = 180.0
ADMIN_PORT = 7001
KEYS = 150


def node_pods(testbed: Testbed) -> list[Obj]:
    return testbed.node_pods(NS, NAME)


def cluster_ready(testbed: Testbed) -> list[Obj] | None:
    return testbed.ready_cluster(NS, NAME, 3)


def pod_named(testbed: Testbed, name: str) -> Obj | None:
    return next((p for p in node_pods(testbed) if meta(p)["name"] == name), None)


def claim(testbed: Testbed, pod: str) -> Obj:
    assert testbed.kube is not None
    return testbed.kube.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/data-{pod}")


def volume_directory(testbed: Testbed, pod: str) -> Path:
    assert testbed.kube is not None
    volume = claim(testbed, pod)["spec"]["volumeName"]
    pv = testbed.kube.get(f"/api/v1/persistentvolumes/{volume}")
    return Path(pv["spec"]["hostPath"]["path"])


def transfers(testbed: Testbed, pod: Obj) -> dict:
    admin = testbed.auth_secret(NS, NAME)["admin-token"]
    status, body = testbed.node_http(
        pod, "GET", "/v1/admin/transfers", port=ADMIN_PORT, headers={"Authorization": f"Bearer {admin}"}
    )
    assert status == 200, (status, body)
    return json.loads(body)


def rebuilt(testbed: Testbed, name: str) -> dict | None:
    """The transfer report of pod `name` once it is Ready and has received
    every partition, with at least every written key."""
    pod = pod_named(testbed, name)
    if pod is None or not Testbed.pod_ready(pod):
        return None
    report = transfers(testbed, pod)
    received = sum(p["keys"] for p in report["partitions"])
    if report["pending"] == 0 and report["done"] > 0 and received >= KEYS:
        return report
    return None


def assert_all_readable(testbed: Testbed, written: dict[str, bytes]) -> None:
    pods = node_pods(testbed)
    for i, (key, value) in enumerate(written.items()):
        status, body = testbed.node_http(pods[i % len(pods)], "GET", f"/v1/kv/{key}?r=3")
        assert (status, body) == (200, value), key


def progressing(testbed: Testbed) -> Obj | None:
    return Testbed.condition(testbed.cluster(NS, NAME), "Progressing")


def lose_volume(testbed: Testbed, pod: Obj) -> None:
    """Freezes the node process, empties its data directory, kills it."""
    kubelet = testbed.kubelet
    assert kubelet is not None
    worker = next(w for w in kubelet.workers.values() if w.pod_name == meta(pod)["name"])
    assert worker.process is not None
    directory = volume_directory(testbed, meta(pod)["name"])
    os.killpg(worker.process.pid, signal.SIGSTOP)
    for entry in directory.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    os.killpg(worker.process.pid, signal.SIGKILL)


def test_a_lost_volume_and_a_dead_machine_are_rebuilt_from_the_other_replicas(testbed: Testbed) -> None:
    kubelet = testbed.start_nodes("zones")
    testbed.install_operator()
    assert testbed.kube is not None
    cluster = {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoCluster",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "image": "dynamo-node:0.1.0",
            "zones": [{"name": "a", "replicas": 3}],
            "partitions": 64,
            "storage": {"size": "1Gi"},
        },
    }
    testbed.kube.apply(cluster, field_manager="test", namespace=NS)
    pods = wait_until("the cluster Ready", lambda: cluster_ready(testbed), READY_TIMEOUT, 1.0)
    config = f"/api/v1/namespaces/{NS}/configmaps/{NAME}-config"
    wait_until(
        "initial-cluster-state: existing",
        lambda: testbed.kube.get(config)["data"].get("initial-cluster-state") == "existing",
        60,
        1.0,
    )
    written = {}
    for i in range(KEYS):
        key, value = f"k-{i:04d}", f"value {i}".encode()
        status, body = testbed.node_http(pods[i % 3], "PUT", f"/v1/kv/{key}?w=3", value)
        assert status == 204, (key, status, body)
        written[key] = value

    # A lost volume, the pod kept: the node rebuilds by itself.
    lost = meta(pods[0])["name"]
    lose_volume(testbed, pods[0])
    report = wait_until(f"{lost} rebuilt", lambda: rebuilt(testbed, lost), READY_TIMEOUT, 1.0)
    assert report["done"] == len(report["partitions"]) > 0, report
    logs = kubelet.pod_logs(NS, lost, tail=400)
    assert "the data directory is empty but the ring lists this node" in logs, logs[-3000:]
    assert_all_readable(testbed, written)

    # A powered-off machine: the status says what blocks and what to do.
    dead = pods[1]
    dead_name, dead_node = meta(dead)["name"], dead["spec"]["nodeName"]
    old_claim = meta(claim(testbed, dead_name))["uid"]
    kubelet.fail_node(dead_node)

    def blocked() -> Obj | None:
        condition = progressing(testbed)
        if condition and condition.get("reason") == "BlockedByMember" and dead_name in condition["message"]:
            return condition
        return None

    condition = wait_until(f"status naming {dead_name} as blocking", blocked, READY_TIMEOUT, 1.0)
    assert "kv.dynamo.dev/replace=true" in condition["message"], condition

    testbed.kubectl("annotate", "-n", NS, "pod", dead_name, "kv.dynamo.dev/replace=true")

    def replaced() -> Obj | None:
        pod = pod_named(testbed, dead_name)
        if pod is None or meta(pod)["uid"] == meta(dead)["uid"] or not Testbed.pod_ready(pod):
            return None
        return pod

    new_pod = wait_until(f"{dead_name} replaced and Ready", replaced, READY_TIMEOUT, 1.0)
    assert new_pod["spec"]["nodeName"] != dead_node
    assert meta(claim(testbed, dead_name))["uid"] != old_claim, "the replacement got a new volume"
    wait_until(f"{dead_name} rebuilt", lambda: rebuilt(testbed, dead_name), READY_TIMEOUT, 1.0)
    events = testbed.kube.get(f"/apis/events.k8s.io/v1/namespaces/{NS}/events").get("items", [])
    notes = [(e.get("reason"), e.get("note", "")) for e in events]
    assert any(reason == "ReplacingNode" and dead_name in note for reason, note in notes), notes
    wait_until("the cluster Ready again", lambda: cluster_ready(testbed), READY_TIMEOUT, 1.0)
    assert_all_readable(testbed, written)
