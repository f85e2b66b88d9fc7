"""Changes to the spec of a DynamoCluster, on the real API server with the
operator installed from the chart (docs/operator.md):

* a pod template change (image, `nodeConfig`) rolls one pod at a time, and a
  `nodeConfig` typo that crash-loops the first replaced pod recovers once
  the spec is corrected, without a manual step;
* storage: a size the API server canonicalises is no change, and a new
  storage class is held (`SpecApplied=False`, `StorageChangeRefused`) while
  the rest of the change is still rolled out;
* a cluster deleted and created again under the same name, with the claims
  the first one left behind;
* the CRD's schema and CEL rules reject invalid specs with their message;
* `kubectl get dync` columns, and `kubectl wait --for=condition=Ready` after
  a change returns only once the rollout has finished.
* the pod settings (`podLabels`, `podAnnotations`, `priorityClassName`,
  `imagePullSecrets`, `startupTimeoutSeconds`, `podAntiAffinity: Required`,
  a `podTemplate` override) reach the pods the API server admits and the
  scheduler places.

Clusters are small (3 pods, 64 partitions). Every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
import subprocess
import threading
import time
from typing import Any

import yaml

from harness.kube import Informer, Obj, meta
from harness.testbed import Testbed
from harness.wait import wait_until

log = logging.getLogger("controlplane.test_spec_changes")

NS = "default"
IMAGE = "dynamo-node:0.1.0"
PARTITIONS = 64
# A cluster of three pods comes up in ~10 s on this machine; a rollout of
# three pods takes ~15 s per pod (readiness probe after 5 s, operator
# requeue). The bounds leave room for a loaded machine.
READY_TIMEOUT = 180.0
ROLLOUT_TIMEOUT = 300.0
# Crash-loop back-off cap of the kubelet stand-in (a real kubelet: 300 s).
BACKOFF_CAP_SECONDS = 10.0
INSTANCE_LABEL = "app.kubernetes.io/instance"
REVISION_LABEL = "controller-revision-hash"

# --- manifests and kubectl ------------------------------------------------


def cluster_manifest(
    name: str,
    zones: list[tuple[str, int]],
    *,
    image: str = IMAGE,
    partitions: int = PARTITIONS,
    storage: dict[str, Any] | None = None,
    node_config: dict[str, Any] | None = None,
    replication: dict[str, int] | None = None,
) -> Obj:
    """A DynamoCluster as a user would write it."""
    spec: Obj = {
        "image": image,
        "zones": [{"name": zone, "replicas": replicas} for zone, replicas in zones],
        "replication": replication or {"factor": 3, "readQuorum": 2, "writeQuorum": 2},
        "partitions": partitions,
        "storage": storage or {"size": "1Gi"},
    }
    if node_config:
        spec["nodeConfig"] = node_config
    return {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def kubectl_apply(testbed: Testbed, obj: Obj, label: str) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -f <file>` of `obj` written as YAML into the test's
    directory; the finished process (not checked)."""
    assert testbed.plane is not None
    directory = testbed.directory / "manifests"
    directory.mkdir(exist_ok=True)
    path = directory / f"{label}.yaml"
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return testbed.plane.kubectl("apply", "-f", str(path), check=False)


def apply_ok(testbed: Testbed, obj: Obj, label: str) -> None:
    result = kubectl_apply(testbed, obj, label)
    assert result.returncode == 0, f"kubectl apply of {label} failed:\n{result.stdout}\n{result.stderr}"


def patch_cluster(testbed: Testbed, name: str, patch: Obj) -> int:
    """`kubectl patch dync NAME --type=merge -p PATCH`; the new generation."""
    testbed.kubectl("patch", "-n", NS, "dync", name, "--type=merge", "-p", json.dumps(patch))
    return int(meta(testbed.cluster(NS, name))["generation"])


# --- observing the cluster --------------------------------------------------


def node_pods(testbed: Testbed, name: str) -> list[Obj]:
    pods = testbed.pods(NS, f"{INSTANCE_LABEL}={name}")
    return sorted(pods, key=lambda p: meta(p)["name"])


def statefulsets(testbed: Testbed, name: str) -> dict[str, Obj]:
    assert testbed.kube is not None
    items = testbed.kube.get(
        f"/apis/apps/v1/namespaces/{NS}/statefulsets", labelSelector=f"{INSTANCE_LABEL}={name}"
    ).get("items", [])
    return {meta(s)["name"]: s for s in items}


def terminating(pod: Obj) -> bool:
    return bool(meta(pod).get("deletionTimestamp"))


def available(pod: Obj) -> bool:
    """Ready and not being deleted."""
    return Testbed.pod_ready(pod) and not terminating(pod)


def owner_statefulset(pod: Obj) -> str | None:
    return next(
        (o["name"] for o in meta(pod).get("ownerReferences") or [] if o.get("kind") == "StatefulSet"),
        None,
    )


def uids(pods: list[Obj]) -> set[str]:
    return {meta(p)["uid"] for p in pods}


def fresh_condition(cluster: Obj, kind: str) -> Obj | None:
    """The condition `kind` if it describes the current generation."""
    found = Testbed.condition(cluster, kind)
    if found and found.get("observedGeneration") == meta(cluster).get("generation"):
        return found
    return None


def container_state(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return "-"
    state = statuses[0].get("state") or {}
    kind = next(iter(state), "-")
    reason = (state.get(kind) or {}).get("reason", "")
    return f"{kind}{'/' + reason if reason else ''} restarts={statuses[0].get('restartCount', 0)}"


def crash_looping(pod: Obj) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return False
    waiting = (statuses[0].get("state") or {}).get("waiting") or {}
    return waiting.get("reason") == "CrashLoopBackOff" or statuses[0].get("restartCount", 0) >= 2


def summary(testbed: Testbed, name: str) -> str:
    """One line per pod and StatefulSet, and the cluster's conditions: what
    a failed wait reports."""
    lines = []
    try:
        cluster = testbed.cluster(NS, name)
        lines.append(f"DynamoCluster {name} generation {meta(cluster).get('generation')}:")
        for c in (cluster.get("status") or {}).get("conditions") or []:
            lines.append(
                f"  {c.get('type')}={c.get('status')} gen={c.get('observedGeneration')} "
                f"{c.get('reason')}: {c.get('message', '')[:300]}"
            )
        for s in statefulsets(testbed, name).values():
            st = s.get("status") or {}
            lines.append(
                f"  sts {meta(s)['name']} gen={meta(s).get('generation')}/{st.get('observedGeneration')} "
                f"update={st.get('updateRevision')} current={st.get('currentRevision')}"
            )
        for p in node_pods(testbed, name):
            lines.append(
                f"  pod {meta(p)['name']} uid={meta(p)['uid'][:8]} ready={Testbed.pod_ready(p)} "
                f"terminating={terminating(p)} rev={(meta(p).get('labels') or {}).get(REVISION_LABEL)} "
                f"{container_state(p)}"
            )
    except Exception as error:  # noqa: BLE001 - only for a message
        lines.append(f"(state unavailable: {error})")
    return "\n".join(lines)


def settled(testbed: Testbed, name: str, expected: int, replaced: set[str] | None = None) -> list[Obj] | None:
    """The pods if the cluster is Ready for its current generation, has
    `expected` pods, every one Ready and on its StatefulSet's update revision
    (StatefulSets caught up with their spec) and, with `replaced`, none of
    those pod UIDs left."""
    ready = fresh_condition(testbed.cluster(NS, name), "Ready")
    if not ready or ready.get("status") != "True":
        return None
    pods = node_pods(testbed, name)
    if len(pods) != expected or not all(available(p) for p in pods):
        return None
    sets = statefulsets(testbed, name)
    for s in sets.values():
        if (s.get("status") or {}).get("observedGeneration") != meta(s).get("generation"):
            return None
    for pod in pods:
        owner = sets.get(owner_statefulset(pod) or "")
        if owner is None:
            return None
        revision = (meta(pod).get("labels") or {}).get(REVISION_LABEL)
        if revision != (owner.get("status") or {}).get("updateRevision"):
            return None
    if replaced and uids(pods) & replaced:
        return None
    return pods


def wait_settled(
    testbed: Testbed,
    name: str,
    expected: int,
    *,
    replaced: set[str] | None = None,
    timeout: float = ROLLOUT_TIMEOUT,
    what: str = "settled",
) -> list[Obj]:
    """Waits for `settled`; on timeout the failure shows the cluster's state."""
    try:
        return wait_until(
            f"DynamoCluster {name} {what}", lambda: settled(testbed, name, expected, replaced), timeout, 1.0
        )
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{summary(testbed, name)}") from None


def cluster_events(testbed: Testbed, name: str, reason: str) -> list[Obj]:
    """events.k8s.io Events about DynamoCluster `name` with `reason`."""
    assert testbed.kube is not None
    items = testbed.kube.get(f"/apis/events.k8s.io/v1/namespaces/{NS}/events").get("items", [])
    return [
        e
        for e in items
        if (e.get("regarding") or {}).get("kind") == "DynamoCluster"
        and (e.get("regarding") or {}).get("name") == name
        and e.get("reason") == reason
    ]


def put_key(testbed: Testbed, pod: Obj, key: str, value: bytes) -> None:
    status, body = testbed.node_http(pod, "PUT", f"/v1/kv/{key}", value)
    assert status in (200, 201, 204), f"PUT {key} via {meta(pod)['name']} answered {status}: {body!r}"


def get_key(testbed: Testbed, pod: Obj, key: str) -> tuple[int, list[bytes]]:
    status, body = testbed.node_http(pod, "GET", f"/v1/kv/{key}", headers={"Accept": "application/json"})
    if status != 200:
        return status, []
    return status, [base64.b64decode(v) for v in json.loads(body)["values"]]


class AvailabilityWatch:
    """Watches a cluster's node pods (every change, through a watch, not a
    poll) and records the most pods unavailable at once: desired pods minus
    those Ready and not terminating, so a deleted pod not yet re-created
    counts too. Also records each pod deletion (name, uid, whether the pod
    was Ready when its deletionTimestamp appeared), in order."""

    def __init__(self, testbed: Testbed, name: str, desired: int) -> None:
        assert testbed.kube is not None
        self.desired = desired
        self.worst = 0
        self.worst_state = ""
        self.deletions: list[tuple[str, str, bool]] = []
        self._deleting: set[str] = set()
        self._lock = threading.Lock()
        self.informer = Informer(
            testbed.kube,
            f"/api/v1/namespaces/{NS}/pods",
            self._on_pod,
            name=f"availability-{name}",
            label_selector=f"{INSTANCE_LABEL}={name}",
        )

    def __enter__(self) -> AvailabilityWatch:
        self.informer.start()
        self.informer.wait_synced()
        return self

    def __exit__(self, *exc: object) -> None:
        self.informer.stop()

    def _on_pod(self, _event: str, pod: Obj) -> None:
        with self._lock:
            uid = meta(pod).get("uid", "")
            if terminating(pod) and uid not in self._deleting:
                self._deleting.add(uid)
                self.deletions.append((meta(pod)["name"], uid, Testbed.pod_ready(pod)))
            pods = self.informer.items()
            unavailable = self.desired - sum(1 for p in pods if available(p))
            if unavailable > self.worst:
                self.worst = unavailable
                self.worst_state = "; ".join(
                    f"{meta(p)['name']} ready={Testbed.pod_ready(p)} terminating={terminating(p)}"
                    for p in sorted(pods, key=lambda p: meta(p)["name"])
                )

    def deleted_since(self, count: int) -> list[str]:
        with self._lock:
            return [name for name, _, _ in self.deletions[count:]]


# --- 1. rolling changes -----------------------------------------------------


def test_rolling_changes_one_pod_at_a_time_and_a_bad_config_recovers(testbed: Testbed) -> None:
    """A pod template change (a new `spec.image`, then a harmless
    `nodeConfig` change) replaces the node pods one at a time (a pod watch
    never sees more than one pod not Ready or terminating), in zone order,
    and ends Ready with every pod on its StatefulSet's update revision and
    the data kept. A `nodeConfig` typo (a key the node refuses) crash-loops
    the first replaced pod and the rollout stops there while the other pods
    keep serving; removing the typo brings the cluster back to Ready with no
    manual step (the test deletes no pod), the operator replacing the
    crash-looping pod while it is not Ready (docs/operator.md, Rolling
    upgrades) rather than leaving it to the kubelet's restarts."""
    name = "rolling"
    zones = ["zone-a", "zone-b", "zone-c"]
    testbed.start_nodes("zones", backoff_cap_seconds=BACKOFF_CAP_SECONDS)
    testbed.install_operator()
    apply_ok(testbed, cluster_manifest(name, [(z, 1) for z in zones]), name)
    began = time.monotonic()
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
    testbed.timings["cluster ready"] = time.monotonic() - began
    put_key(testbed, pods[0], "kept", b"across rollouts")
    expected_order = [f"{name}-{z}-0" for z in zones]

    with AvailabilityWatch(testbed, name, 3) as watch:
        # (a) a new image: a pod template change.
        began = time.monotonic()
        before = uids(pods)
        mark = len(watch.deletions)
        patch_cluster(testbed, name, {"spec": {"image": "dynamo-node:0.2.0"}})
        pods = wait_settled(testbed, name, 3, replaced=before, what="rolled out to the new image")
        testbed.timings["image rollout"] = time.monotonic() - began
        assert [p["spec"]["containers"][0]["image"] for p in pods] == ["dynamo-node:0.2.0"] * 3
        assert watch.deleted_since(mark) == expected_order, "pods replaced in zone order, once each"
        assert watch.worst <= 1, f"{watch.worst} node pods unavailable at once: {watch.worst_state}"

        # (a) a harmless nodeConfig change.
        began = time.monotonic()
        before = uids(pods)
        mark = len(watch.deletions)
        patch_cluster(testbed, name, {"spec": {"nodeConfig": {"read-repair-chance": 0.2}}})
        pods = wait_settled(testbed, name, 3, replaced=before, what="rolled out to the new nodeConfig")
        testbed.timings["nodeConfig rollout"] = time.monotonic() - began
        assert testbed.kube is not None
        config = testbed.kube.get(f"/api/v1/namespaces/{NS}/configmaps/{name}-config")
        assert "read-repair-chance = 0.2" in config["data"]["node.toml"], config["data"]["node.toml"]
        assert watch.deleted_since(mark) == expected_order, "pods replaced in zone order, once each"
        assert watch.worst <= 1, f"{watch.worst} node pods unavailable at once: {watch.worst_state}"
        status, values = get_key(testbed, pods[1], "kept")
        assert (status, values) == (200, [b"across rollouts"]), "data survives the rollouts"

        # (b) a typo: the node refuses unknown keys, so the first replaced
        # pod crash-loops.
        began = time.monotonic()
        before = {meta(p)["name"]: meta(p)["uid"] for p in pods}
        mark = len(watch.deletions)
        generation = patch_cluster(testbed, name, {"spec": {"nodeConfig": {"read-repair-chanse": 0.5}}})

        def first_replaced_crash_looping() -> Obj | None:
            for pod in node_pods(testbed, name):
                if meta(pod)["uid"] != before.get(meta(pod)["name"]) and crash_looping(pod):
                    return pod
            return None

        try:
            bad = wait_until("the first replaced pod crash-loops", first_replaced_crash_looping, 120, 1.0)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{summary(testbed, name)}") from None
        bad_name, bad_uid = meta(bad)["name"], meta(bad)["uid"]
        assert bad_name == expected_order[0], f"{bad_name} replaced first, expected {expected_order[0]}"
        logs = testbed.kubelet.pod_logs(NS, bad_name) if testbed.kubelet else ""
        log.info("crash-looping pod %s logs:\n%s", bad_name, logs)
        # The rollout stops there: for a few crash-loop cycles nothing else
        # is replaced, the other pods serve reads and writes, and the
        # cluster is not Ready.
        others = [p for p in node_pods(testbed, name) if meta(p)["name"] != bad_name]
        hold_until = time.monotonic() + 2.5 * BACKOFF_CAP_SECONDS
        round_ = 0
        while time.monotonic() < hold_until:
            round_ += 1
            for pod in others:
                # One key per writer: blind writes of one key through two
                # coordinators are concurrent versions (siblings, 300).
                key = f"during-crash-loop-{round_}-{meta(pod)['name']}"
                put_key(testbed, pod, key, b"served")
                status, values = get_key(testbed, pod, key)
                assert (status, values) == (200, [b"served"]), f"read of {key} via {meta(pod)['name']}"
            time.sleep(2.0)
        now = {meta(p)["name"]: p for p in node_pods(testbed, name)}
        for pod in others:
            current = now.get(meta(pod)["name"])
            assert current is not None and meta(current)["uid"] == meta(pod)["uid"], (
                f"{meta(pod)['name']} was replaced while {bad_name} crash-loops\n{summary(testbed, name)}"
            )
            assert available(current), f"{meta(pod)['name']} stopped serving\n{summary(testbed, name)}"
        assert watch.deleted_since(mark) == [bad_name], "only the first pod replaced"
        cluster = testbed.cluster(NS, name)
        ready = fresh_condition(cluster, "Ready")
        assert ready is not None and ready["status"] == "False", f"Ready during the crash loop: {ready}"
        assert meta(cluster)["generation"] == generation
        crash_loop_state = summary(testbed, name)
        log.info("during the crash loop:\n%s", crash_loop_state)
        testbed.timings["bad config held"] = time.monotonic() - began

        # Correcting the spec recovers the cluster without a manual step.
        began = time.monotonic()
        mark = len(watch.deletions)
        log.info("removing the typo")
        patch_cluster(testbed, name, {"spec": {"nodeConfig": {"read-repair-chanse": None}}})
        pods = wait_settled(testbed, name, 3, replaced={bad_uid}, what="recovered after the typo is removed")
        testbed.timings["recovery"] = time.monotonic() - began
        assert watch.worst <= 1, f"{watch.worst} node pods unavailable at once: {watch.worst_state}"
        status, values = get_key(testbed, pods[0], "kept")
        assert (status, values) == (200, [b"across rollouts"]), "data survives the bad config"
        # And it recovered the documented way: the operator replaced the
        # crash-looping pod while it was not Ready (docs/operator.md, Rolling
        # upgrades), rather than waiting for the kubelet to restart it into
        # the corrected ConfigMap (here within the 10 s back-off cap and an
        # at-once volume sync; a real kubelet takes up to 5 min and 1 min,
        # and a bad image would never recover that way).
        deleted = watch.deletions[mark:]
        log.info("deletions after the correction (name, uid, ready): %s", deleted)
        assert deleted and deleted[0][1] == bad_uid and not deleted[0][2], (
            f"the operator did not replace the crash-looping pod {bad_name} (uid {bad_uid}) while it was "
            f"not Ready; deletions after the correction (name, uid, was Ready): {deleted}\n"
            f"state during the crash loop:\n{crash_loop_state}"
        )


# --- 2. storage ---------------------------------------------------------------


def test_storage_size_canonicalised_and_a_held_change_reported(testbed: Testbed) -> None:
    """`storage.size: 1024Mi` (stored by the API server as 1Gi in the
    StatefulSets' claim template) reaches Ready with `SpecApplied=True`. A
    smaller size together with a `nodeConfig` change: the cluster reports
    `SpecApplied=False` reason `StorageChangeRefused` and a Warning Event
    with that reason, the StatefulSets and claims keep their storage, and
    the `nodeConfig` change is still rolled out (Ready, every pod replaced
    and on the update revision). (A `storageClassName` change is refused by
    the API server: `test_api_server_rejects_invalid_specs`.)"""
    name = "storage"
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.kube is not None
    apply_ok(testbed, cluster_manifest(name, [("main", 3)], storage={"size": "1024Mi"}), name)
    began = time.monotonic()
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
    testbed.timings["cluster ready"] = time.monotonic() - began
    cluster = testbed.cluster(NS, name)
    applied = fresh_condition(cluster, "SpecApplied")
    assert applied is not None and applied["status"] == "True", f"SpecApplied with 1024Mi: {applied}"
    assert not cluster_events(testbed, name, "StorageChangeRefused")
    sts = statefulsets(testbed, name)[f"{name}-main"]
    templates = sts["spec"]["volumeClaimTemplates"]
    assert templates[0]["spec"]["resources"]["requests"]["storage"] == "1Gi", templates
    claims = claims_of(testbed, name)
    assert len(claims) == 3, sorted(claims)

    began = time.monotonic()
    before = uids(pods)
    generation = patch_cluster(
        testbed,
        name,
        {"spec": {"storage": {"size": "512Mi"}, "nodeConfig": {"read-repair-chance": 0.2}}},
    )

    def held() -> Obj | None:
        found = fresh_condition(testbed.cluster(NS, name), "SpecApplied")
        return found if found and found["status"] == "False" else None

    try:
        condition = wait_until("SpecApplied=False for the new generation", held, 60, 1.0)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{summary(testbed, name)}") from None
    assert condition["reason"] == "StorageChangeRefused", condition
    assert "512Mi" in condition["message"] and "cannot shrink" in condition["message"], condition
    events = wait_until(
        "a StorageChangeRefused event", lambda: cluster_events(testbed, name, "StorageChangeRefused"), 30
    )
    assert all(e.get("type") == "Warning" for e in events), events

    pods = wait_settled(testbed, name, 3, replaced=before, what="rolled out to the new nodeConfig")
    testbed.timings["rollout with the storage change held"] = time.monotonic() - began
    cluster = testbed.cluster(NS, name)
    assert meta(cluster)["generation"] == generation
    applied = fresh_condition(cluster, "SpecApplied")
    assert applied is not None and applied["status"] == "False", f"still held: {applied}"
    assert applied["reason"] == "StorageChangeRefused"
    sts = statefulsets(testbed, name)[f"{name}-main"]
    assert sts["spec"]["volumeClaimTemplates"] == templates, "the claim template is kept"
    config = testbed.kube.get(f"/api/v1/namespaces/{NS}/configmaps/{name}-config")
    assert "read-repair-chance = 0.2" in config["data"]["node.toml"], config["data"]["node.toml"]
    after = claims_of(testbed, name)
    assert {n: meta(c)["uid"] for n, c in after.items()} == {n: meta(c)["uid"] for n, c in claims.items()}
    assert all(requested(c) == "1Gi" for c in after.values()), after


def claims_of(testbed: Testbed, name: str) -> dict[str, Obj]:
    """The cluster's volume claims, by name."""
    assert testbed.kube is not None
    items = testbed.kube.get(
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims", labelSelector=f"{INSTANCE_LABEL}={name}"
    ).get("items", [])
    return {meta(c)["name"]: c for c in items}


def requested(claim: Obj) -> str:
    """The storage a claim (or claim template) asks for."""
    return str(claim["spec"]["resources"]["requests"]["storage"])


def test_volumes_grow_never_shrink_and_carry_the_cluster_uid(testbed: Testbed) -> None:
    """Claims carry `kv.dynamo.dev/cluster-uid`; the StatefulSet keeps claims
    on cluster deletion and deletes those of removed pods. `storage.size`
    1Gi -> 2Gi: every claim grows (requested and provided) while the pods
    keep running (same UIDs) and the StatefulSet keeps its (immutable) claim
    template, `SpecApplied` goes back to True and the data is all there. A
    smaller size is refused (`StorageChangeRefused`, "cannot shrink") and
    the claims stay at 2Gi. A scale-up's new claim (made from the template)
    is grown to 2Gi; the scale-down after it deletes that claim."""
    name = "vol"
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.kube is not None
    apply_ok(testbed, cluster_manifest(name, [("main", 3)], storage={"size": "1Gi"}), name)
    began = time.monotonic()
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
    testbed.timings["ready"] = time.monotonic() - began
    uid = meta(testbed.cluster(NS, name))["uid"]
    wait_until(
        "claims labelled with the cluster uid",
        lambda: all(
            (meta(c).get("labels") or {}).get("kv.dynamo.dev/cluster-uid") == uid
            for c in claims_of(testbed, name).values()
        ),
        60,
        1.0,
    )
    sts = statefulsets(testbed, name)[f"{name}-main"]
    retention = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Delete"}, retention
    written = {}
    for i in range(60):
        key, value = f"vol-{i:03d}", f"value {i}".encode()
        status, body = testbed.node_http(pods[i % 3], "PUT", f"/v1/kv/{key}?w=3", value)
        assert status == 204, (key, status, body)
        written[key] = value

    before, sts_uid = uids(pods), meta(sts)["uid"]
    began = time.monotonic()
    patch_cluster(testbed, name, {"spec": {"storage": {"size": "2Gi"}}})

    def grown() -> dict[str, Obj] | None:
        claims = claims_of(testbed, name)
        sized = all(
            requested(c) == "2Gi" and (c.get("status") or {}).get("capacity", {}).get("storage") == "2Gi"
            for c in claims.values()
        )
        applied = fresh_condition(testbed.cluster(NS, name), "SpecApplied")
        if len(claims) == 3 and sized and applied is not None and applied["status"] == "True":
            return claims
        return None

    try:
        wait_until("claims grown to 2Gi", grown, ROLLOUT_TIMEOUT, 1.0)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{summary(testbed, name)}") from None
    testbed.timings["volumes grown"] = time.monotonic() - began
    pods = wait_settled(testbed, name, 3, what="settled after the growth")
    assert uids(pods) == before, "the pods kept running"
    assert meta(statefulsets(testbed, name)[f"{name}-main"])["uid"] == sts_uid
    assert cluster_events(testbed, name, "VolumeExpansion")
    for i, (key, value) in enumerate(written.items()):
        status, body = testbed.node_http(pods[i % 3], "GET", f"/v1/kv/{key}?r=3")
        assert (status, body) == (200, value), key

    patch_cluster(testbed, name, {"spec": {"storage": {"size": "1Gi"}}})

    def refused() -> Obj | None:
        found = fresh_condition(testbed.cluster(NS, name), "SpecApplied")
        return found if found and found["status"] == "False" else None

    began = time.monotonic()
    condition = wait_until("a smaller size refused", refused, 60, 1.0)
    testbed.timings["shrink refused"] = time.monotonic() - began
    assert condition["reason"] == "StorageChangeRefused", condition
    assert "cannot shrink" in condition["message"], condition
    assert all(requested(c) == "2Gi" for c in claims_of(testbed, name).values())

    four = {"storage": {"size": "2Gi"}, "zones": [{"name": "main", "replicas": 4}]}
    began = time.monotonic()
    patch_cluster(testbed, name, {"spec": four})
    wait_settled(testbed, name, 4, what="scaled up to 4")
    testbed.timings["scaled up to 4"] = time.monotonic() - began

    def added_ready() -> Obj | None:
        added = claims_of(testbed, name)[f"data-{name}-main-3"]
        labelled = (meta(added).get("labels") or {}).get("kv.dynamo.dev/cluster-uid") == uid
        provided = (added.get("status") or {}).get("capacity", {}).get("storage")
        return added if labelled and requested(added) == "2Gi" and provided == "2Gi" else None

    wait_until("the new claim labelled and grown to 2Gi", added_ready, 60, 1.0)
    began = time.monotonic()
    patch_cluster(testbed, name, {"spec": {"zones": [{"name": "main", "replicas": 3}]}})
    wait_settled(testbed, name, 3, what="scaled down to 3")
    testbed.timings["scaled down to 3"] = time.monotonic() - began
    wait_until(
        "the removed pod's claim deleted",
        lambda: f"data-{name}-main-3" not in claims_of(testbed, name),
        120,
        1.0,
    )


def paused_for(testbed: Testbed, name: str) -> Obj | None:
    """The `Paused` condition if it is true for the current generation."""
    found = fresh_condition(testbed.cluster(NS, name), "Paused")
    return found if found and found["status"] == "True" else None


def test_pause_holds_every_change_until_resumed(testbed: Testbed) -> None:
    """`spec.paused: true` on a Ready cluster: `Paused=True` and a Paused
    Event; a scale-up and a `nodeConfig` change made while paused change
    nothing (StatefulSet replicas and template, ConfigMap, ring epoch,
    pods) and the status does not claim the generation; `paused: false`
    carries both out (four pods on the new template, a Resumed Event,
    `Paused=False`)."""
    name = "paused"
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.kube is not None
    apply_ok(testbed, cluster_manifest(name, [("main", 3)]), name)
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
    epoch = testbed.cluster(NS, name)["status"]["ringEpoch"]

    patch_cluster(testbed, name, {"spec": {"paused": True}})
    wait_until("Paused=True", lambda: paused_for(testbed, name), 60, 1.0)
    wait_until("a Paused event", lambda: cluster_events(testbed, name, "Paused"), 30)
    sts = statefulsets(testbed, name)[f"{name}-main"]
    config = testbed.kube.get(f"/api/v1/namespaces/{NS}/configmaps/{name}-config")
    generation = patch_cluster(
        testbed,
        name,
        {"spec": {"zones": [{"name": "main", "replicas": 4}], "nodeConfig": {"read-repair-chance": 0.3}}},
    )
    wait_until("Paused=True for the changed spec", lambda: paused_for(testbed, name), 60, 1.0)
    time.sleep(25)  # two more reconciles (10 s apart while paused) must change nothing either
    cluster = testbed.cluster(NS, name)
    assert paused_for(testbed, name), summary(testbed, name)
    assert cluster["status"]["ringEpoch"] == epoch, cluster["status"]
    assert cluster["status"].get("observedGeneration", 0) < generation, cluster["status"]
    held = statefulsets(testbed, name)[f"{name}-main"]
    assert held["spec"]["replicas"] == 3 and held["spec"]["template"] == sts["spec"]["template"], held["spec"]
    held_config = testbed.kube.get(f"/api/v1/namespaces/{NS}/configmaps/{name}-config")
    assert held_config["data"] == config["data"], "the ConfigMap is not touched while paused"
    assert uids(node_pods(testbed, name)) == uids(pods), "no pod is restarted while paused"

    began = time.monotonic()
    patch_cluster(testbed, name, {"spec": {"paused": False}})
    wait_settled(testbed, name, 4, replaced=uids(pods), what="scaled and rolled out after the pause")
    testbed.timings["changes carried out after the pause"] = time.monotonic() - began
    assert cluster_events(testbed, name, "Resumed"), "a Resumed event"
    cluster = testbed.cluster(NS, name)
    paused = fresh_condition(cluster, "Paused")
    assert paused is not None and paused["status"] == "False" and paused["reason"] == "Resumed", paused
    assert cluster["status"]["ringEpoch"] > epoch, cluster["status"]
    config = testbed.kube.get(f"/api/v1/namespaces/{NS}/configmaps/{name}-config")
    assert "read-repair-chance = 0.3" in config["data"]["node.toml"], config["data"]["node.toml"]


# --- 3. delete and re-create ------------------------------------------------


def test_delete_and_recreate_with_the_same_name(testbed: Testbed) -> None:
    """A cluster deleted with `kubectl delete dync` and created again under
    the same name reaches Ready, or (what the operator does now) says
    `Ready=False` reason `PreviousClusterVolumes` with a message naming the
    old claims and the `kubectl delete pvc` command; running exactly that
    command, as a user would, lets the cluster reach Ready, empty, on new
    claims."""
    name = "again"
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.kube is not None
    manifest = cluster_manifest(name, [("main", 3)])
    apply_ok(testbed, manifest, name)
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
    put_key(testbed, pods[0], "old", b"first cluster")
    claims_path = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
    old_claims = {
        meta(c)["name"]: meta(c)["uid"]
        for c in testbed.kube.get(claims_path, labelSelector=f"{INSTANCE_LABEL}={name}").get("items", [])
    }
    assert sorted(old_claims) == [f"data-{name}-main-{i}" for i in range(3)]

    began = time.monotonic()
    testbed.kubectl("delete", "-n", NS, "dync", name, "--timeout=120s", timeout=150)
    wait_until("the deleted cluster's pods are gone", lambda: not node_pods(testbed, name), 180, 1.0)
    testbed.timings["deleted"] = time.monotonic() - began

    began = time.monotonic()
    apply_ok(testbed, manifest, f"{name}-again")

    def ready_or_blocked() -> Obj | None:
        found = fresh_condition(testbed.cluster(NS, name), "Ready")
        if found and (found["status"] == "True" or found.get("reason") == "PreviousClusterVolumes"):
            return found
        return None

    try:
        ready = wait_until("Ready, or PreviousClusterVolumes", ready_or_blocked, READY_TIMEOUT, 1.0)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{summary(testbed, name)}") from None
    if ready["status"] == "True":
        log.info("the re-created cluster reached Ready at once: %s", ready)
        wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
        return

    assert ready["status"] == "False", ready
    message = ready.get("message", "")
    for claim in old_claims:
        assert claim in message, f"{claim} not named: {message}"
    found = re.search(r"(kubectl delete pvc [^.]*)\.", message)
    assert found, f"no kubectl delete pvc command in: {message}"
    command = shlex.split(found.group(1))
    assert command[:3] == ["kubectl", "delete", "pvc"], command
    assert set(command[3:]) >= set(old_claims), f"command does not delete every claim: {command}"
    assert cluster_events(testbed, name, "PreviousClusterVolumes"), "a PreviousClusterVolumes event"
    assert not node_pods(testbed, name), "nothing created while blocked"
    testbed.timings["blocked"] = time.monotonic() - began

    began = time.monotonic()
    testbed.kubectl(*command[1:], timeout=150)
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready after the claims were deleted")
    testbed.timings["ready after kubectl delete pvc"] = time.monotonic() - began
    new_claims = {
        meta(c)["name"]: meta(c)["uid"]
        for c in testbed.kube.get(claims_path, labelSelector=f"{INSTANCE_LABEL}={name}").get("items", [])
    }
    assert sorted(new_claims) == sorted(old_claims)
    assert not set(new_claims.values()) & set(old_claims.values()), "new claims, not the old ones"
    status, values = get_key(testbed, pods[0], "old")
    assert status == 404, f"the new cluster is empty, but GET old answered {status}: {values}"


# --- 4. API-side validation -----------------------------------------------------


NAME_RULE = "metadata.name must be a DNS label that starts with a letter"
LENGTH_RULE = "metadata.name and each zone name together must be at most 51 characters"


def test_api_server_rejects_invalid_specs(testbed: Testbed) -> None:
    """`kubectl apply` of a DynamoCluster that breaks the CRD's schema or
    one of its CEL rules fails (non-zero exit) with the rule's message or
    the schema error in stderr, and creates nothing: a name that is not a
    DNS label, name + zone name over 51 characters, a zone name with
    uppercase letters, duplicate zone names, 300 replicas, factor 20,
    readQuorum above factor, 1000 and 131072 partitions. A valid spec is
    accepted, and then a change of its partitions or of its
    storageClassName refused; a 3-zone cluster (factor 3) cannot drop to 2
    zones with nodes."""
    testbed.install_operator()
    assert testbed.kube is not None

    def spec_with(name: str = "valid", **changes: Any) -> Obj:
        obj = cluster_manifest(name, [("a", 3)])
        obj["spec"].update(changes)
        return obj

    cases: list[tuple[str, Obj, list[str]]] = [
        # Not a DNS subdomain either: the API server's name check or the rule.
        ("name-underscore", spec_with("Bad_Name"), [NAME_RULE, "RFC 1123"]),
        ("name-digit-first", spec_with("1abc"), [NAME_RULE]),
        ("name-with-dot", spec_with("a.b"), [NAME_RULE]),
        ("name-zone-too-long", spec_with("c" * 30, zones=[{"name": "z" * 25, "replicas": 1}]), [LENGTH_RULE]),
        (
            "zone-uppercase",
            spec_with(zones=[{"name": "Zone-A", "replicas": 1}]),
            ["spec.zones[0].name", "should match"],
        ),
        (
            "zone-duplicate",
            spec_with(zones=[{"name": "a", "replicas": 1}, {"name": "a", "replicas": 2}]),
            ["zone names must be unique"],
        ),
        (
            "zone-replicas-300",
            spec_with(zones=[{"name": "a", "replicas": 300}]),
            ["spec.zones[0].replicas", "less than or equal to 256"],
        ),
        (
            "factor-20",
            spec_with(replication={"factor": 20, "readQuorum": 2, "writeQuorum": 2}),
            ["spec.replication.factor", "less than or equal to 16"],
        ),
        (
            "read-quorum-above-factor",
            spec_with(replication={"factor": 3, "readQuorum": 4, "writeQuorum": 2}),
            ["readQuorum must be at most factor"],
        ),
        ("partitions-1000", spec_with(partitions=1000), ["partitions must be a power of two"]),
        (
            "partitions-131072",
            spec_with(partitions=131072),
            ["spec.partitions", "less than or equal to 65536"],
        ),
    ]
    problems = []
    for label, obj, expected in cases:
        result = kubectl_apply(testbed, obj, label)
        name = meta(obj)["name"]
        # Bad_Name offers two acceptable messages; the others need all parts.
        matched = (
            any(e in result.stderr for e in expected)
            if label == "name-underscore"
            else all(e in result.stderr for e in expected)
        )
        if result.returncode == 0 or not matched:
            problems.append(
                f"{label}: exit {result.returncode}, expected {expected} in stderr:\n"
                f"  stdout: {result.stdout.strip()}\n  stderr: {result.stderr.strip()}"
            )
        elif re.fullmatch(r"[a-z0-9.-]+", name) and testbed.kube.get_opt(
            f"/apis/kv.dynamo.dev/v1alpha1/namespaces/{NS}/dynamoclusters/{name}"
        ):
            problems.append(f"{label}: rejected, yet {name} exists")
        log.info("%s: exit %s: %s", label, result.returncode, result.stderr.strip())
    result = kubectl_apply(testbed, spec_with("valid"), "valid")
    if result.returncode != 0:
        problems.append(f"valid: exit {result.returncode}: {result.stderr.strip()}")
    elif testbed.kube.get_opt(f"/apis/kv.dynamo.dev/v1alpha1/namespaces/{NS}/dynamoclusters/valid") is None:
        problems.append("valid: accepted but not stored")
    else:
        changed = spec_with("valid", partitions=PARTITIONS * 2)
        result = kubectl_apply(testbed, changed, "valid-partitions-changed")
        if result.returncode == 0 or "partitions cannot change" not in result.stderr:
            problems.append(f"partitions changed: exit {result.returncode}: {result.stderr.strip()}")
        changed = spec_with("valid", storage={"size": "1Gi", "storageClassName": "fast"})
        result = kubectl_apply(testbed, changed, "valid-storage-class-changed")
        if result.returncode == 0 or "storageClassName cannot change" not in result.stderr:
            problems.append(f"storageClassName changed: exit {result.returncode}: {result.stderr.strip()}")
    three = [{"name": zone, "replicas": 1} for zone in ("a", "b", "c")]
    result = kubectl_apply(testbed, spec_with("zoned", zones=three), "zoned")
    if result.returncode != 0:
        problems.append(f"zoned: exit {result.returncode}: {result.stderr.strip()}")
    result = kubectl_apply(testbed, spec_with("zoned", zones=three[:2]), "zoned-zone-removed")
    if result.returncode == 0 or "zones with nodes cannot drop below replication.factor" not in result.stderr:
        problems.append(f"a zone removed below the factor: exit {result.returncode}: {result.stderr.strip()}")
    assert not problems, "\n".join(problems)


# --- 5. kubectl get and kubectl wait ---------------------------------------------


def test_kubectl_columns_and_wait_for_rollout(testbed: Testbed) -> None:
    """`kubectl get dync` shows NAME, READY, PHASE, NODES, DESIRED, EPOCH,
    AGE with the values of a Ready cluster (`-o wide` adds REASON). After a
    `spec.image` change, `kubectl wait --for=condition=Ready` started right
    after the patch returns only once the rollout has finished: every pod
    Ready, on its StatefulSet's (new) update revision, and replaced."""
    name = "columns"
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.plane is not None
    apply_ok(testbed, cluster_manifest(name, [("main", 3)]), name)
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")

    lines = testbed.kubectl("get", "-n", NS, "dync").splitlines()
    assert lines[0].split() == ["NAME", "READY", "PHASE", "NODES", "DESIRED", "EPOCH", "AGE"], lines
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 1 and rows[0][:6] == [name, "True", "Running", "3", "3", "1"], lines
    assert re.fullmatch(r"\d+[smhd](\d+[smh])?", rows[0][6]), f"AGE {rows[0][6]!r}"
    wide = testbed.kubectl("get", "-n", NS, "dync", name, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "READY", "PHASE", "NODES", "DESIRED", "EPOCH", "REASON", "AGE"], wide
    assert wide[1].split()[:7] == [name, "True", "Running", "3", "3", "1", "AllNodesReady"], wide

    before = uids(pods)
    revisions = {n: s["status"]["updateRevision"] for n, s in statefulsets(testbed, name).items()}
    began = time.monotonic()
    patch_cluster(testbed, name, {"spec": {"image": "dynamo-node:0.2.0"}})
    result = testbed.plane.kubectl(
        "wait",
        "-n",
        NS,
        "--for=condition=Ready",
        f"dync/{name}",
        f"--timeout={int(ROLLOUT_TIMEOUT)}s",
        timeout=ROLLOUT_TIMEOUT + 30,
        check=False,
    )
    # The state right when kubectl wait returned, before anything else.
    pods = node_pods(testbed, name)
    sets = statefulsets(testbed, name)
    state = summary(testbed, name)
    testbed.timings["kubectl wait"] = time.monotonic() - began
    assert result.returncode == 0, f"kubectl wait failed: {result.stdout}{result.stderr}\n{state}"
    assert len(pods) == 3 and all(available(p) for p in pods), f"not every pod Ready:\n{state}"
    for pod in pods:
        owner = sets[owner_statefulset(pod) or ""]
        update = owner["status"]["updateRevision"]
        assert update != revisions[meta(owner)["name"]], f"StatefulSet revision unchanged:\n{state}"
        assert (meta(pod).get("labels") or {}).get(REVISION_LABEL) == update, f"outdated pod:\n{state}"
    assert not uids(pods) & before, f"pods not replaced when kubectl wait returned:\n{state}"
    assert all(p["spec"]["containers"][0]["image"] == "dynamo-node:0.2.0" for p in pods), state


# --- 6. pod spec settings ------------------------------------------------------------

PRIORITY_CLASS = "dynamo-storage"
PRIORITY = 100000
PULL_SECRET = "registry-credentials"
STARTUP_TIMEOUT_SECONDS = 120
HOSTNAME_LABEL = "kubernetes.io/hostname"
# The node logs JSON lines with it (node/src/main.rs): visible in its log.
LOG_FORMAT = {"name": "DYNAMO_LOG_FORMAT", "value": "json"}


def test_pod_spec_settings_reach_the_pods(testbed: Testbed) -> None:
    """A cluster created with `podLabels`, `podAnnotations`, a
    `priorityClassName` (the PriorityClass created first), `imagePullSecrets`,
    `startupTimeoutSeconds`, `podAntiAffinity: Required` and a `podTemplate`
    adding `DYNAMO_LOG_FORMAT=json` to the node container becomes Ready on the
    `zones` node set: three Kubernetes nodes for three pods (one per zone),
    since a required anti-affinity needs a node per pod. The pods the API
    server admitted carry every setting: the extra labels and annotations
    next to the operator's, the priority class and the priority the Priority
    admission plugin resolved from it, the pull secret, no service account
    token, a startup probe with the budget's failureThreshold, the required
    anti-affinity and the `DoNotSchedule` spread over hostnames, the extra
    variable after the operator's. The scheduler put each pod on its own
    node, and the variable reached the node process (its log is JSON)."""
    name = "podspec"
    zones = ["zone-a", "zone-b", "zone-c"]
    testbed.start_nodes("zones")
    testbed.install_operator()
    assert testbed.kube is not None
    testbed.kube.apply(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": PRIORITY_CLASS},
            "value": PRIORITY,
            "description": "storage nodes",
        },
        field_manager="test",
    )
    registry = base64.b64encode(json.dumps({"auths": {}}).encode()).decode()
    testbed.kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": PULL_SECRET},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": registry},
        },
        field_manager="test",
        namespace=NS,
    )
    manifest = cluster_manifest(name, [(z, 1) for z in zones])
    manifest["spec"].update(
        {
            "podLabels": {"team": "storage"},
            "podAnnotations": {"example.com/owner": "storage-team"},
            "priorityClassName": PRIORITY_CLASS,
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "startupTimeoutSeconds": STARTUP_TIMEOUT_SECONDS,
            "podAntiAffinity": "Required",
            "podTemplate": {"spec": {"containers": [{"name": "node", "env": [LOG_FORMAT]}]}},
        }
    )
    apply_ok(testbed, manifest, name)
    began = time.monotonic()
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready")
    testbed.timings["cluster ready"] = time.monotonic() - began

    hosts = [p["spec"].get("nodeName") for p in pods]
    assert len(set(hosts)) == 3 and None not in hosts, f"one pod per Kubernetes node: {hosts}"
    problems = []
    for pod in pods:
        problems += [f"{meta(pod)['name']}: {problem}" for problem in pod_setting_problems(pod, name)]
    assert not problems, "\n".join(problems)
    assert testbed.kubelet is not None
    logs = testbed.kubelet.pod_logs(NS, meta(pods[0])["name"])
    assert any(json_log_line(line) for line in logs.splitlines()), f"no JSON log line:\n{logs}"


def pod_setting_problems(pod: Obj, cluster: str) -> list[str]:
    """What a node pod of `test_pod_spec_settings_reach_the_pods` lacks."""
    labels = meta(pod).get("labels") or {}
    annotations = meta(pod).get("annotations") or {}
    spec = pod["spec"]
    node = next((c for c in spec["containers"] if c["name"] == "node"), {})
    startup = node.get("startupProbe") or {}
    env = node.get("env") or []
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    required = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    spread = [
        (c["topologyKey"], c["maxSkew"], c["whenUnsatisfiable"], c["labelSelector"]["matchLabels"])
        for c in spec.get("topologySpreadConstraints") or []
    ]
    node_pods = {
        "app.kubernetes.io/name": "dynamo",
        INSTANCE_LABEL: cluster,
        "app.kubernetes.io/component": "node",
    }
    token_volumes = [v["name"] for v in spec.get("volumes") or [] if v["name"].startswith("kube-api-access")]
    checks = {
        "labels": labels.get("team") == "storage" and labels.get(INSTANCE_LABEL) == cluster,
        "annotations": annotations.get("example.com/owner") == "storage-team"
        and "kv.dynamo.dev/config-hash" in annotations,
        "priority": (spec.get("priorityClassName"), spec.get("priority")) == (PRIORITY_CLASS, PRIORITY),
        "imagePullSecrets": spec.get("imagePullSecrets") == [{"name": PULL_SECRET}],
        "no service account token": spec.get("automountServiceAccountToken") is False and not token_volumes,
        "startup probe": (startup.get("httpGet") or {}).get("path") == "/healthz"
        and startup.get("periodSeconds") == 5
        and startup.get("failureThreshold") == STARTUP_TIMEOUT_SECONDS // 5,
        "env": bool(env) and env[-1] == LOG_FORMAT and env[0]["name"] == "DYNAMO_NODE_ID",
        "required anti-affinity": [t["topologyKey"] for t in required] == [HOSTNAME_LABEL]
        and required[0]["labelSelector"]["matchLabels"] == node_pods
        and "preferredDuringSchedulingIgnoredDuringExecution" not in anti,
        "spread": spread == [(HOSTNAME_LABEL, 1, "DoNotSchedule", node_pods)],
    }
    return [f"{what}: {json.dumps(spec)[:2000]}" for what, ok in checks.items() if not ok]


def json_log_line(line: str) -> bool:
    """A tracing JSON log line (`{"timestamp": ..., "level": ...}`)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and "level" in entry
