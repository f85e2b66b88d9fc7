"""The quickstart of docs/operator.md on a fresh one-node cluster: install the
operator (`helm install dynamo-operator helm/dynamo-operator -n dynamo-system
--create-namespace`), then `kubectl apply -n default -f
manifests/examples/single-zone.yaml`, wait until the DynamoCluster is Ready
with every pod Running and ready, and write and read a key through a node
with the client token of the generated `<cluster>-auth` Secret.

The second case is the same in a namespace that enforces the `restricted`
Pod Security Standard, as hardened clusters do (beyond the docs).

`test_quickstart_credentials` checks the credentials on the same cluster:
the generated Secret, a client port that refuses requests without a token
and serves no admin route, and admin routes on the internal port that take
the admin token only."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from harness.kube import Obj, meta
from harness.testbed import CLIENT_PORT, INTERNAL_PORT, Testbed
from harness.wait import Abort, wait_until

CLUSTER = "single-zone"
EXAMPLE = "manifests/examples/single-zone.yaml"
# Keys of the auth Secret the operator generates, each 32 random bytes hex.
GENERATED_KEYS = {"admin-token", "peer-token", "client-token"}
HEX_TOKEN = re.compile(r"[0-9a-f]{64}")
EXPECTED_PODS = 3
READY_TIMEOUT = 180.0
# A pod the scheduler still cannot place, or the StatefulSet controller
# still cannot create, after this long will not be.
UNSCHEDULABLE_FOR = 60.0
FAILED_CREATE_FOR = 60.0


def unschedulable(pod: Obj) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return condition.get("message", "")
    return None


def start_quickstart(testbed: Testbed, namespace: str, pod_security: str | None) -> list[Obj]:
    """The quickstart's steps up to a Ready cluster; its pods, by name."""
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

    def ready() -> list[Obj] | None:
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
    return sorted(pods, key=lambda p: p["metadata"]["name"])


@pytest.mark.parametrize(
    "namespace,pod_security",
    [("default", None), ("kv-restricted", "restricted")],
    ids=["docs", "restricted-namespace"],
)
def test_quickstart_single_zone(testbed: Testbed, namespace: str, pod_security: str | None) -> None:
    pod = start_quickstart(testbed, namespace, pod_security)[0]
    # node_http sends the client token of the generated Secret.
    status, body = testbed.node_http(pod, "PUT", "/v1/kv/quickstart", b"hello from the testbed")
    assert status in (200, 201, 204), f"PUT answered {status}: {body!r}"
    status, body = testbed.node_http(pod, "GET", "/v1/kv/quickstart", headers={"Accept": "application/json"})
    assert status == 200, f"GET answered {status}: {body!r}"
    values = [base64.b64decode(v) for v in json.loads(body)["values"]]
    assert values == [b"hello from the testbed"]


def test_quickstart_credentials(testbed: Testbed) -> None:
    namespace = "default"
    pod = start_quickstart(testbed, namespace, None)[0]
    kube = testbed.kube
    assert kube is not None

    # The Secret the operator generated: three distinct random tokens,
    # owned by the cluster so it goes with it.
    secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{CLUSTER}-auth")
    tokens = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    assert set(tokens) == GENERATED_KEYS, f"keys of {CLUSTER}-auth: {sorted(tokens)}"
    assert all(HEX_TOKEN.fullmatch(t) for t in tokens.values()), "tokens are 32 random bytes, hex"
    assert len(set(tokens.values())) == len(GENERATED_KEYS), "one token per role"
    cluster_uid = meta(testbed.cluster(namespace, CLUSTER))["uid"]
    owners = meta(secret).get("ownerReferences") or []
    assert [(o["kind"], o["uid"]) for o in owners] == [("DynamoCluster", cluster_uid)], owners
    admin = {"Authorization": f"Bearer {tokens['admin-token']}"}
    client = {"Authorization": f"Bearer {tokens['client-token']}"}
    ip = pod["status"]["podIP"]

    # The client port: /v1/kv needs a client token, and serves no admin route.
    status, body = testbed.node_http(ip, "PUT", "/v1/kv/credentials", b"no token", port=CLIENT_PORT)
    assert status == 401, f"PUT without a token answered {status}: {body!r}"
    status, body = testbed.node_http(
        ip, "PUT", "/v1/kv/credentials", b"client token", port=CLIENT_PORT, headers=client
    )
    assert status in (200, 201, 204), f"PUT with the client token answered {status}: {body!r}"
    status, body = testbed.node_http(ip, "GET", "/v1/admin/ring", port=CLIENT_PORT, headers=admin)
    assert status == 404, f"GET /v1/admin/ring on the client port answered {status}: {body!r}"

    # The internal port: the admin routes take the admin token, not a client's.
    status, body = testbed.node_http(ip, "GET", "/v1/admin/ring", port=INTERNAL_PORT, headers=admin)
    assert status == 200, f"GET /v1/admin/ring with the admin token answered {status}: {body!r}"
    assert json.loads(body)["ring"]["epoch"] >= 1
    status, body = testbed.node_http(ip, "GET", "/v1/admin/ring", port=INTERNAL_PORT, headers=client)
    assert status in (401, 403), f"GET /v1/admin/ring with the client token answered {status}: {body!r}"
