"""Lifecycle scenarios of the operator on a real control plane.

- Every example (manifests/examples/*.yaml as their headers say, and the
  chart's `exampleCluster`) reaches Ready on a one-node cluster without zone
  labels and on three zone-labelled nodes, and serves reads and writes.
- The same examples in namespaces enforcing the `restricted` Pod Security
  Standard.
- A 3-node cluster scaled 3 -> 6 -> 3 while a client writes: every write
  the cluster acknowledged is still readable afterwards.
- The operator SIGKILLed while a scale-up is moving partitions: a successor
  takes the Lease and finishes the step without losing data.

Each test has its own control plane (the `testbed` fixture); all clusters of
one test share it.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.kube import Obj, meta
from harness.operator import NAMESPACE as OPERATOR_NAMESPACE
from harness.testbed import DYNAMO_API, Testbed
from harness.wait import Abort, wait_until

log = logging.getLogger("harness.lifecycle")

INSTANCE = "app.kubernetes.io/instance"
NODE_IMAGE = "dynamo-node:0.1.0"
# Chart values of a platform team that turns the example cluster on.
CHART_EXAMPLE_VALUES: dict[str, Any] = {"exampleCluster": {"enabled": True}}
ZONE_LABEL = "topology.kubernetes.io/zone"

READY_TIMEOUT = 240.0
# A pod the scheduler still cannot place, or the StatefulSet controller
# still cannot create, after this long will not be.
UNSCHEDULABLE_FOR = 60.0
FAILED_CREATE_FOR = 60.0
WRITE_OK = (200, 201, 204)


# --- clusters -------------------------------------------------------------


@dataclass
class Target:
    """A DynamoCluster a test waits for: where, and how many node pods."""

    namespace: str
    name: str
    pods: int

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class _Stuck:
    """When a wait first saw a pod unschedulable or pods not created."""

    unschedulable: dict[str, float] = field(default_factory=dict)
    failed_create: float | None = None


def _unschedulable(pod: Obj) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            return condition.get("message", "")
    return None


def _serving(pod: Obj) -> bool:
    """Running, Ready and not being deleted."""
    return Testbed.pod_ready(pod) and not meta(pod).get("deletionTimestamp")


def _check_stuck(testbed: Testbed, target: Target, pods: list[Obj], stuck: _Stuck) -> None:
    """Abort when pods stay unschedulable or uncreatable: they will not run."""
    now = time.monotonic()
    for pod in pods:
        name = meta(pod)["name"]
        message = _unschedulable(pod)
        if message is None:
            stuck.unschedulable.pop(name, None)
        elif now - stuck.unschedulable.setdefault(name, now) > UNSCHEDULABLE_FOR:
            raise Abort(f"pod {target.namespace}/{name} unschedulable for {UNSCHEDULABLE_FOR:g}s: {message}")
    if len(pods) >= target.pods:
        stuck.failed_create = None
        return
    assert testbed.kube is not None
    events = [
        e
        for e in testbed.kube.get(
            f"/api/v1/namespaces/{target.namespace}/events", fieldSelector="reason=FailedCreate"
        ).get("items", [])
        if (e.get("involvedObject") or {}).get("name", "").startswith(f"{target.name}-")
    ]
    if not events:
        stuck.failed_create = None
        return
    stuck.failed_create = stuck.failed_create or now
    if now - stuck.failed_create > FAILED_CREATE_FOR:
        raise Abort(f"pods of {target} not created for {FAILED_CREATE_FOR:g}s: {events[-1].get('message')}")


def settled(testbed: Testbed, target: Target, *, min_epoch: int = 0) -> tuple[Obj, list[Obj]] | None:
    """The cluster and its pods once it is settled on its current spec:
    `Ready=True` for the current generation, ring epoch at least
    `min_epoch`, no rebalancing, exactly `target.pods` pods (terminating
    ones count), each Running and ready. None otherwise; Abort when the spec
    was refused."""
    cluster = testbed.cluster(target.namespace, target.name)
    generation = meta(cluster).get("generation")
    status = cluster.get("status") or {}
    ready = testbed.condition(cluster, "Ready") or {}
    if ready.get("reason") == "SpecRefused" and ready.get("observedGeneration") == generation:
        raise Abort(f"DynamoCluster {target} refused: {ready.get('message')}")
    pods = testbed.pods(target.namespace, f"{INSTANCE}={target.name}")
    if (
        ready.get("status") != "True"
        or ready.get("observedGeneration") != generation
        or status.get("observedGeneration") != generation
        or (status.get("ringEpoch") or 0) < min_epoch
        or status.get("rebalancing")
        or (testbed.condition(cluster, "Rebalancing") or {}).get("status") == "True"
        or len(pods) != target.pods
        or not all(_serving(p) for p in pods)
    ):
        return None
    return cluster, sorted(pods, key=lambda p: meta(p)["name"])


def wait_settled(
    testbed: Testbed,
    targets: Iterable[Target],
    *,
    min_epoch: int = 0,
    timeout: float = READY_TIMEOUT,
    operator_alive: bool = True,
) -> dict[str, tuple[Obj, list[Obj]]]:
    """Waits until every target is `settled`; their cluster and pods by
    `namespace/name`. Aborts early on pods that cannot be scheduled or
    created, a refused spec, or (with `operator_alive`) no live operator."""
    targets = list(targets)
    stuck = {str(t): _Stuck() for t in targets}
    done: dict[str, tuple[Obj, list[Obj]]] = {}

    def check() -> dict[str, tuple[Obj, list[Obj]]] | None:
        if operator_alive:
            assert testbed.operator is not None
            if not any(p.alive() for p in testbed.operator.processes):
                raise Abort("no operator process is running")
        for target in targets:
            key = str(target)
            state = settled(testbed, target, min_epoch=min_epoch)
            if state is None:
                done.pop(key, None)
                _check_stuck(
                    testbed, target, testbed.pods(target.namespace, f"{INSTANCE}={target.name}"), stuck[key]
                )
            else:
                done[key] = state
        return dict(done) if len(done) == len(targets) else None

    names = ", ".join(f"{t} ({t.pods} pods)" for t in targets)
    return wait_until(
        f"DynamoCluster(s) {names} Ready, settled, every pod Running and ready", check, timeout, 1.0
    )


def cluster_manifest(name: str, *, replicas: int = 1, partitions: int = 64) -> Obj:
    """A DynamoCluster of three zones `zone-a|b|c` (preferring the
    zones node set's nodes of the same names), N=3, R=W=2."""
    return {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoCluster",
        "metadata": {"name": name},
        "spec": {
            "image": NODE_IMAGE,
            "zones": [{"name": f"zone-{z}", "replicas": replicas} for z in "abc"],
            "replication": {"factor": 3, "readQuorum": 2, "writeQuorum": 2},
            "partitions": partitions,
            "storage": {"size": "1Gi"},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        },
    }


def set_replicas(testbed: Testbed, target: Target, replicas: int) -> Obj:
    """`kubectl patch --type=json` of every zone's replicas."""
    assert testbed.kube is not None
    cluster = testbed.cluster(target.namespace, target.name)
    patch = [
        {"op": "replace", "path": f"/spec/zones/{i}/replicas", "value": replicas}
        for i in range(len(cluster["spec"]["zones"]))
    ]
    return testbed.kube.patch(
        f"{DYNAMO_API}/namespaces/{target.namespace}/dynamoclusters/{target.name}", patch, patch_type="json"
    )


def create_namespace(testbed: Testbed, namespace: str, pod_security: str | None = None) -> None:
    if namespace not in ("default", OPERATOR_NAMESPACE):
        testbed.kubectl("create", "namespace", namespace)
    if pod_security:
        testbed.kubectl(
            "label",
            "--overwrite",
            "namespace",
            namespace,
            f"pod-security.kubernetes.io/enforce={pod_security}",
        )
    testbed.namespaces.add(namespace)


def utc_now() -> str:
    """The wall clock as the node and operator logs print it."""
    return datetime.now(UTC).strftime("%H:%M:%S.%f")


# --- the key-value API ------------------------------------------------------


def put(testbed: Testbed, pod: Obj | str, key: str, value: bytes, timeout: float = 5.0) -> int:
    status, _ = testbed.node_http(pod, "PUT", f"/v1/kv/{key}", value, timeout=timeout)
    return status


def get_values(
    testbed: Testbed, pod: Obj | str, key: str, *, r: int | None = None, timeout: float = 10.0
) -> tuple[int, list[bytes]]:
    """GET as JSON (with read quorum `r` if given): the status and the live
    values (siblings: several)."""
    query = f"?r={r}" if r else ""
    status, body = testbed.node_http(
        pod, "GET", f"/v1/kv/{key}{query}", headers={"Accept": "application/json"}, timeout=timeout
    )
    if status not in (200, 300):
        return status, []
    return status, [base64.b64decode(v) for v in json.loads(body)["values"]]


def read_back(
    testbed: Testbed, pods: list[Obj], expected: dict[str, bytes], origin: dict[str, str] | None = None
) -> list[str]:
    """Reads every key through the pods in turn (default quorum); the
    problems found, each with where the write was acknowledged (`origin`)
    and what a read of all N replicas (`r=3`) through another pod sees. A
    transport error or 5xx is retried once through the next pod; a 404 or
    another value is a problem at once."""
    problems = []
    for i, (key, value) in enumerate(sorted(expected.items())):
        answer: str | None = None
        for attempt in range(2):
            pod = pods[(i + attempt) % len(pods)]
            where = f"{meta(pod)['name']} ({pod['status']['podIP']})"
            try:
                status, values = get_values(testbed, pod, key)
            except (OSError, http.client.HTTPException) as error:
                answer = f"{where}: {error!r}"
                continue
            if status >= 500:
                answer = f"{where} answered {status}"
                continue
            if status == 404:
                answer = f"missing ({where} answered 404)"
            elif values != [value]:
                answer = f"{where} answered {status} with {values!r}, expected [{value!r}]"
            else:
                answer = None
            break
        if answer is None:
            continue
        other = pods[(i + 1) % len(pods)]
        try:
            status, values = get_values(testbed, other, key, r=3)
            all_replicas = f"{status} {values!r}"
        except (OSError, http.client.HTTPException) as error:
            all_replicas = repr(error)
        acked = f"; acknowledged {origin[key]}" if origin and key in origin else ""
        problems.append(f"{key}: {answer}{acked}; r=3 through {meta(other)['name']}: {all_replicas}")
    return problems


def write_keys(testbed: Testbed, pods: list[Obj], prefix: str, count: int) -> dict[str, bytes]:
    """`count` fresh keys written through the pods in turn; each must be acknowledged."""
    written = {}
    for i in range(count):
        key, value = f"{prefix}-{i:05d}", f"{prefix} value {i} {secrets.token_hex(8)}".encode()
        pod = pods[i % len(pods)]
        status = put(testbed, pod, key, value)
        assert status in WRITE_OK, f"PUT {key} through {meta(pod)['name']} answered {status}"
        written[key] = value
    return written


@dataclass(frozen=True)
class Ack:
    """A write the cluster acknowledged."""

    at: float  # time.monotonic()
    wall: float  # time.time(), to compare with the logs
    key: str
    value: bytes
    pod: str  # the coordinating node pod


class Writer(threading.Thread):
    """A client writing fresh keys, in turn through every serving node pod
    of a cluster (their pod IPs; the list is refreshed every second). Only
    writes answered 2xx count as acknowledged; refused connections, time-outs
    and error answers (pods going away) are counted and otherwise ignored."""

    def __init__(self, testbed: Testbed, target: Target, *, interval: float = 0.03) -> None:
        super().__init__(name=f"writer {target}", daemon=True)
        self.testbed = testbed
        self.target = target
        self.interval = interval
        self.prefix = f"w{secrets.token_hex(3)}"
        self.acked: list[Ack] = []
        self.failures: dict[str, int] = {}
        self.last_failures: list[str] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.error = error

    def _run(self) -> None:
        pods: list[Obj] = []
        refreshed = 0.0
        sequence = 0
        while not self._halt.is_set():
            if time.monotonic() - refreshed > 1.0:
                try:
                    listed = self.testbed.pods(self.target.namespace, f"{INSTANCE}={self.target.name}")
                    pods = sorted((p for p in listed if _serving(p)), key=lambda p: meta(p)["name"])
                    refreshed = time.monotonic()
                except Exception as error:  # noqa: BLE001 - keep the last list
                    self._failed("list pods", error)
            if not pods:
                self._halt.wait(0.2)
                continue
            pod = pods[sequence % len(pods)]
            key = f"{self.prefix}-{sequence:06d}"
            value = f"{key} {secrets.token_hex(8)}".encode()
            sequence += 1
            try:
                status = put(self.testbed, pod, key, value, timeout=5.0)
            except (OSError, http.client.HTTPException) as error:
                self._failed(meta(pod)["name"], error)
            else:
                if status in WRITE_OK:
                    with self._lock:
                        self.acked.append(Ack(time.monotonic(), time.time(), key, value, meta(pod)["name"]))
                else:
                    self._failed(meta(pod)["name"], f"HTTP {status}")
            self._halt.wait(self.interval)

    def _failed(self, where: str, error: object) -> None:
        kind = type(error).__name__ if isinstance(error, BaseException) else str(error)
        with self._lock:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            self.last_failures = [*self.last_failures[-9:], f"{where}: {error}"]

    def acked_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for a in self.acked if start <= a.at <= end)

    def longest_gap(self, start: float, end: float) -> float:
        """Longest time in [start, end] without an acknowledged write."""
        with self._lock:
            times = [start, *(a.at for a in self.acked if start <= a.at <= end), end]
        return max(b - a for a, b in itertools.pairwise(times))

    def stop(self) -> None:
        """Stops the writer (bounded: one request's time-out at most)."""
        self._halt.set()
        self.join(30)

    def acknowledged(self) -> dict[str, bytes]:
        """Every acknowledged key and its value, once stopped."""
        assert not self.is_alive(), "the writer did not stop"
        if self.error is not None:
            raise AssertionError(f"the writer failed: {self.error!r}") from self.error
        with self._lock:
            return {a.key: a.value for a in self.acked}

    def origins(self) -> dict[str, str]:
        """Per acknowledged key: through which pod, and when (UTC)."""
        with self._lock:
            return {
                a.key: f"by {a.pod} at {datetime.fromtimestamp(a.wall, UTC).strftime('%H:%M:%S.%f')}"
                for a in self.acked
            }


# --- 1 and 2: the examples --------------------------------------------------


def install_examples(testbed: Testbed, node_set: str, pod_security: str | None) -> list[Target]:
    """The operator from the chart with the example cluster enabled, then
    both files of manifests/examples/ each in its own namespace with
    `kubectl apply -n NS -f FILE` (client-side, as their headers say) and
    the DynamoCluster the chart renders, as Helm would apply it."""
    testbed.start_nodes(node_set)
    testbed.install_operator(values=CHART_EXAMPLE_VALUES)
    operator = testbed.operator
    assert operator is not None and testbed.kube is not None

    targets = []
    for name in ("single-zone", "three-zones"):
        namespace = f"example-{name}"
        create_namespace(testbed, namespace, pod_security)
        testbed.apply_file(f"manifests/examples/{name}.yaml", namespace=namespace, server_side=False)
        targets.append(Target(namespace, name, 3))

    rendered = [d for d in operator.rendered if d.get("kind") == "DynamoCluster"]
    count = len(rendered)
    assert count == 1, f"the chart rendered {count} DynamoClusters with {CHART_EXAMPLE_VALUES}"
    example = rendered[0]
    namespace = meta(example).get("namespace") or operator.namespace
    create_namespace(testbed, namespace, pod_security)
    testbed.kube.apply(example, field_manager="helm", namespace=namespace)
    pods = sum(int(z.get("replicas", 0)) for z in example["spec"]["zones"])
    targets.append(Target(namespace, meta(example)["name"], pods))
    return targets


def check_network_policy(testbed: Testbed, target: Target) -> None:
    """The examples enable spec.networkPolicy: the API server holds
    `<cluster>-nodes` selecting the node pods, port 7000 open, port 7001
    only for the cluster's nodes and pods labelled admin-access. (Nothing
    here enforces NetworkPolicies: there is no network plugin.)"""
    assert testbed.kube is not None
    path = f"/apis/networking.k8s.io/v1/namespaces/{target.namespace}/networkpolicies/{target.name}-nodes"
    spec = testbed.kube.get(path)["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == target.name
    client, internal = spec["ingress"]
    assert client["ports"] == [{"protocol": "TCP", "port": 7000}] and "from" not in client, spec
    assert internal["ports"] == [{"protocol": "TCP", "port": 7001}], spec
    peers, admins = internal["from"]
    assert peers["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "node", spec
    assert admins["podSelector"]["matchLabels"] == {"kv.dynamo.dev/admin-access": "true"}, spec


def check_examples(testbed: Testbed, node_set: str, targets: list[Target]) -> None:
    """All Ready with every pod Running and ready; a key written and read
    through one node pod of each (read back through that pod and another);
    on the zones node set, pods of a zone named like a node's zone run there."""
    began = time.monotonic()
    states = wait_settled(testbed, targets)
    testbed.timings["examples ready"] = time.monotonic() - began
    assert testbed.kube is not None

    for target in targets:
        cluster, pods = states[str(target)]
        status = cluster["status"]
        assert status.get("readyNodes") == target.pods, f"{target}: status {status}"
        assert status.get("phase") == "Running", f"{target}: status {status}"

        if node_set == "zones":
            node_zones = {
                meta(n)["name"]: meta(n).get("labels", {}).get(ZONE_LABEL)
                for n in testbed.kube.get("/api/v1/nodes")["items"]
            }
            misplaced = [
                f"{meta(p)['name']} (zone {zone}) on {p['spec'].get('nodeName')}"
                for p in pods
                if (zone := meta(p).get("labels", {}).get("kv.dynamo.dev/zone"))
                and zone in node_zones.values()
                and node_zones.get(p["spec"].get("nodeName")) != zone
            ]
            assert not misplaced, f"{target}: pods outside the node zone of their name: {misplaced}"

        check_network_policy(testbed, target)
        key = f"example-{target.name}"
        value = f"hello from {target}".encode()
        writer = meta(pods[0])["name"]
        code = put(testbed, pods[0], key, value, timeout=10.0)
        assert code in WRITE_OK, f"{target}: PUT through {writer} answered {code}"
        for pod in (pods[0], pods[-1]):
            answer = get_values(testbed, pod, key)
            assert answer == (200, [value]), f"{target}: GET through {meta(pod)['name']}: {answer}"


@pytest.mark.parametrize("node_set", ["single", "zones"])
def test_every_example_ready(testbed: Testbed, node_set: str) -> None:
    """On a one-node cluster without zone labels (`single`) and on three
    nodes labelled zone-a|b|c (`zones`): manifests/examples/single-zone.yaml
    and three-zones.yaml applied as documented, each in its own namespace,
    and the chart's example cluster (`exampleCluster.enabled=true`) all
    reach Ready with every pod Running and ready, and each serves a write
    and a read through its node pods."""
    targets = install_examples(testbed, node_set, pod_security=None)
    check_examples(testbed, node_set, targets)


def test_examples_in_restricted_namespaces(testbed: Testbed) -> None:
    """The same three examples on the zones node set, each in a namespace
    enforcing the `restricted` Pod Security Standard (the release namespace
    of the chart's example too), reach Ready and serve a write and a read:
    the node pods the operator creates pass restricted admission."""
    targets = install_examples(testbed, "zones", pod_security="restricted")
    assert testbed.kube is not None
    for target in targets:
        labels = meta(testbed.kube.get(f"/api/v1/namespaces/{target.namespace}")).get("labels", {})
        assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels
    check_examples(testbed, "zones", targets)


# --- 3: scaling under writes ------------------------------------------------


def test_scale_up_and_down_under_writes(testbed: Testbed) -> None:
    """A 3-zone x 1-node cluster (64 partitions) scaled to 2 nodes per zone
    and back to 1 while a client keeps writing fresh keys through the ready
    node pods: each change settles (Ready, 6 then 3 pods, a new ring epoch,
    nothing rebalancing), writes are acknowledged during both changes, and
    every acknowledged write is readable afterwards with its value."""
    testbed.start_nodes("zones")
    testbed.install_operator()
    assert testbed.kube is not None
    target = Target("kv", "scaling", 3)
    create_namespace(testbed, target.namespace)
    testbed.kube.apply(cluster_manifest(target.name), field_manager="kubectl", namespace=target.namespace)
    began = time.monotonic()
    cluster, _ = wait_settled(testbed, [target])[str(target)]
    testbed.timings["cluster ready"] = time.monotonic() - began
    epoch0 = cluster["status"]["ringEpoch"]

    writer = Writer(testbed, target)
    writer.start()
    marks: dict[str, str] = {}
    try:
        wait_until("the writer's first acknowledged write", lambda: writer.acked or writer.error, 30, 0.2)

        up_began = time.monotonic()
        marks["3 -> 6 patched"] = utc_now()
        set_replicas(testbed, target, 2)
        target.pods = 6
        cluster, _ = wait_settled(testbed, [target], min_epoch=epoch0 + 1)[str(target)]
        up_done = time.monotonic()
        marks["6 settled"] = utc_now()
        testbed.timings["scale 3 -> 6"] = up_done - up_began
        epoch1 = cluster["status"]["ringEpoch"]
        assert cluster["status"].get("readyNodes") == 6, cluster["status"]

        down_began = time.monotonic()
        marks["6 -> 3 patched"] = utc_now()
        set_replicas(testbed, target, 1)
        target.pods = 3
        cluster, pods = wait_settled(testbed, [target], min_epoch=epoch1 + 1)[str(target)]
        down_done = time.monotonic()
        marks["3 settled"] = utc_now()
        testbed.timings["scale 6 -> 3"] = down_done - down_began
    finally:
        writer.stop()
    acked = writer.acknowledged()

    during_up = writer.acked_between(up_began, up_done)
    during_down = writer.acked_between(down_began, down_done)
    summary = (
        f"writer: {len(acked)} acknowledged ({during_up} during scale-up, longest gap "
        f"{writer.longest_gap(up_began, up_done):.1f}s; {during_down} during scale-down, longest gap "
        f"{writer.longest_gap(down_began, down_done):.1f}s); failures {writer.failures}, last "
        f"{writer.last_failures}; ring epochs {epoch0} -> {epoch1} -> {cluster['status']['ringEpoch']}; "
        f"times (UTC) {marks}"
    )
    log.info("%s", summary)
    assert during_up > 0, f"no write acknowledged during the scale-up; {summary}"
    assert during_down > 0, f"no write acknowledged during the scale-down; {summary}"

    began = time.monotonic()
    problems = read_back(testbed, pods, acked, writer.origins())
    testbed.timings["read back"] = time.monotonic() - began
    if problems:
        # Evidence only: are they merely late (anti-entropy) or gone?
        time.sleep(15)
        missing = {p.split(":", 1)[0] for p in problems}
        late = read_back(testbed, pods, {k: acked[k] for k in missing})
        problems.append(f"15 s later, {len(late)} of them still not read back")
    assert not problems, (
        f"{len(problems) - 1} of {len(acked)} acknowledged writes not read back after 3 -> 6 -> 3 "
        f"({summary}):\n" + "\n".join(problems[:50])
    )


# --- 4: the operator killed in the middle of a rebalance --------------------


def _rebalancing_seen(status: Obj, epoch0: int) -> bool:
    """A ring newer than `epoch0` published and not yet complete."""
    progress = status.get("rebalancing") or {}
    return (status.get("ringEpoch") or 0) > epoch0 and bool(progress) and progress.get("epoch", 0) > epoch0


def test_operator_killed_during_rebalance(testbed: Testbed) -> None:
    """A Ready 3-node cluster holding data is scaled to 6 nodes; as soon as
    the status shows the new ring published and its partitions still moving
    (a watch of the resource sees every status write: `status.rebalancing`
    for an epoch above the old one), the leading operator is SIGKILLed. A
    successor takes the real Lease and finishes that step: Ready with 6
    pods, nothing rebalancing, the ring epoch the killed operator published
    (not another one), every key written before still readable, the Lease
    held by the successor.

    The kill point is the published-but-incomplete ring rather than the
    earlier `ScalingUp` (waiting for the new pods): that is where the
    successor must pick up a transfer it did not start."""
    testbed.start_nodes("zones")
    first = testbed.install_operator()
    operator = testbed.operator
    assert operator is not None and testbed.kube is not None
    target = Target("kv", "takeover", 3)
    create_namespace(testbed, target.namespace)
    testbed.kube.apply(
        cluster_manifest(target.name, partitions=256), field_manager="kubectl", namespace=target.namespace
    )
    cluster, pods = wait_settled(testbed, [target])[str(target)]
    epoch0 = cluster["status"]["ringEpoch"]
    written = write_keys(testbed, pods, "before", 300)
    assert operator.leader() == first.pod_name

    path = f"{DYNAMO_API}/namespaces/{target.namespace}"
    version = meta(testbed.kube.get(f"{path}/dynamoclusters", fieldSelector=f"metadata.name={target.name}"))[
        "resourceVersion"
    ]
    set_replicas(testbed, target, 2)
    target.pods = 6
    began = time.monotonic()
    seen: list[str] = []
    at_kill: Obj | None = None
    deadline = began + 180
    while at_kill is None and time.monotonic() < deadline:
        events = testbed.kube.watch(
            f"{path}/dynamoclusters",
            resource_version=version,
            timeout_seconds=max(1, int(deadline - time.monotonic())),
            field_selector=f"metadata.name={target.name}",
        )
        try:
            for event in events:
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise AssertionError(f"watch of DynamoCluster {target} failed: {obj}")
                version = meta(obj).get("resourceVersion", version)
                if event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                status = obj.get("status") or {}
                state = f"{status.get('phase')}@{status.get('ringEpoch')}"
                if not seen or seen[-1] != state:
                    seen.append(state)
                if _rebalancing_seen(status, epoch0):
                    testbed.kill_operator(first)
                    at_kill = status
                    break
                ready = testbed.condition(obj, "Ready") or {}
                if ready.get("status") == "True" and (status.get("ringEpoch") or 0) > epoch0:
                    pytest.fail(f"the scale-up finished before any status showed it rebalancing: {seen}")
        finally:
            events.close()
    assert at_kill is not None, f"no rebalancing status within 180s of the scale-up: {seen}"
    testbed.timings["scale-up to rebalancing"] = time.monotonic() - began
    assert not first.alive()
    log.info("operator %s killed at status %s (phases %s)", first.pod_name, at_kill, seen)

    killed = time.monotonic()
    second = testbed.start_operator()
    operator.wait_leading(second, timeout=90)
    testbed.timings["successor leading"] = time.monotonic() - killed
    cluster, pods = wait_settled(testbed, [target], min_epoch=epoch0 + 1)[str(target)]
    testbed.timings["kill to settled"] = time.monotonic() - killed
    status = cluster["status"]
    assert status.get("readyNodes") == 6 and not status.get("rebalancing"), status
    assert status["ringEpoch"] == at_kill["ringEpoch"], (
        f"the successor published ring epoch {status['ringEpoch']} instead of finishing epoch "
        f"{at_kill['ringEpoch']}, which already had the 6 pods"
    )

    holder = operator.leader()
    expected = f"expected the successor {second.pod_name} (killed: {first.pod_name})"
    assert holder == second.pod_name != first.pod_name, f"Lease held by {holder}, {expected}"

    problems = read_back(testbed, pods, written)
    assert not problems, f"{len(problems)} of {len(written)} keys not read back:\n" + "\n".join(problems[:50])


def test_a_stopped_operator_hands_the_lease_over_at_once(testbed: Testbed) -> None:
    """SIGTERM to the leading operator: it stops its controllers and clears
    the Lease's holder before it exits, so a successor leads at its first
    try instead of waiting for the Lease (15 s) to expire."""
    first = testbed.install_operator()
    operator = testbed.operator
    assert operator is not None
    first.stop()
    assert not first.alive() and first.process.returncode == 0, first.log_tail(20)
    assert operator.leader() is None, f"the Lease still names {operator.leader()}:\n{first.log_tail(20)}"
    began = time.monotonic()
    second = testbed.start_operator()
    operator.wait_leading(second, timeout=30)
    testbed.timings["successor leading after a clean stop"] = time.monotonic() - began
