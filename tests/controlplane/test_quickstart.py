"""The quickstart of docs/images.md on a fresh one-node cluster: install the
operator (`helm install dynamo-operator helm/dynamo-operator -n dynamo-system
--create-namespace`), then `kubectl apply -n default -f
manifests/examples/single-zone.yaml`, wait until the DynamoCluster is Ready
with every pod Running and ready, and write and read a key through a node.

The second case is the same in a namespace that enforces the `restricted`
Pod Security Standard, as hardened clusters do (beyond the docs)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from harness.testbed import Testbed
from harness.wait import Abort, wait_until

CLUSTER = "single-zone"
EXAMPLE = "manifests/examples/single-zone.yaml"
EXPECTED_PODS = 3
READY_TIMEOUT = 180.0
# A pod the scheduler still cannot place, or the StatefulSet controller
# still cannot create, after this long will not be.
UNSCHEDULABLE_FOR = 60.0
FAILED_CREATE_FOR = 60.0


def unschedulable(pod: dict) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return condition.get("message", "")
    return None


@pytest.mark.parametrize(
    "namespace,pod_security",
    [("default", None), ("kv-restricted", "restricted")],
    ids=["docs", "restricted-namespace"],
)
def test_quickstart_single_zone(testbed: Testbed, namespace: str, pod_security: str | None) -> None:
    testbed.start_nodes("single")
    testbed.install_operator()
    if pod_security:
        testbed.kubectl("create", "namespace", namespace)
        testbed.kubectl("label", "namespace", namespace, f"pod-security.kubernetes.io/enforce={pod_security}")

    # The documented command (client-side apply, as the docs write it).
    testbed.apply_file(EXAMPLE, namespace=namespace, server_side=False)
    began = time.monotonic()
    first_unschedulable: dict[str, float] = {}
    first_failed_create: list[float] = []
    kube = testbed.kube
    assert kube is not None

    def ready() -> list[dict] | None:
        cluster = testbed.cluster(namespace, CLUSTER)
        condition = testbed.condition(cluster, "Ready") or {}
        pods = testbed.pods(namespace, f"app.kubernetes.io/instance={CLUSTER}")
        for pod in pods:
            message = unschedulable(pod)
            name = pod["metadata"]["name"]
            if message is None:
                first_unschedulable.pop(name, None)
                continue
            since = first_unschedulable.setdefault(name, time.monotonic())
            if time.monotonic() - since > UNSCHEDULABLE_FOR:
                raise Abort(f"pod {name} unschedulable for {UNSCHEDULABLE_FOR:g}s: {message}")
        if len(pods) < EXPECTED_PODS:
            events = kube.get(
                f"/api/v1/namespaces/{namespace}/events", fieldSelector="reason=FailedCreate"
            ).get("items", [])
            if events:
                first_failed_create[:1] = first_failed_create[:1] or [time.monotonic()]
                if time.monotonic() - first_failed_create[0] > FAILED_CREATE_FOR:
                    raise Abort(f"pods not created for {FAILED_CREATE_FOR:g}s: {events[-1]['message']}")
        if condition.get("status") != "True" or len(pods) != EXPECTED_PODS:
            return None
        return pods if all(testbed.pod_ready(p) for p in pods) else None

    pods = wait_until(
        f"DynamoCluster {namespace}/{CLUSTER} Ready with {EXPECTED_PODS} pods Running and ready",
        ready,
        READY_TIMEOUT,
        2.0,
    )
    testbed.timings["cluster ready"] = time.monotonic() - began

    pod = sorted(pods, key=lambda p: p["metadata"]["name"])[0]
    status, body = testbed.node_http(pod, "PUT", "/v1/kv/quickstart", b"hello from the testbed")
    assert status in (200, 201, 204), f"PUT answered {status}: {body!r}"
    status, body = testbed.node_http(pod, "GET", "/v1/kv/quickstart", headers={"Accept": "application/json"})
    assert status == 200, f"GET answered {status}: {body!r}"
    values = [base64.b64decode(v) for v in json.loads(body)["values"]]
    assert values == [b"hello from the testbed"]
