"""Upgrading the node image on a real control plane (docs/operator.md, "Upgrade
the operator and the node image"), with the real previous release: the
`dynamo-node-previous` image runs dynamo-node built from the pinned commit
of scripts/build-previous-node.sh, the last before the data format and the
node-to-node protocol carried versions.

A 3-node cluster created on the previous release is moved to this one by
changing `spec.image` while a client writes: the operator replaces the pods
one at a time, so old and new nodes serve together (a new node dials old
ones with a handshake they do not know, old nodes dial new ones without
one). The rollout is held half-way (`spec.paused`) to write with `w=3`
through every pod, which proves calls both ways work; every acknowledged
write reads back; a write with a TTL through a pod of this release is
refused (`503 attributes_unavailable`) while a node of the previous one
serves. Then the image is rolled back, which the data format allows (no
value with attributes was written, so every directory is still format 1,
which both releases read), and everything still reads back.

The refusal on the other side (a node on a data directory of a newer
format) is the node's integration test
`hostile_admin::a_data_directory_of_a_newer_format_is_refused`.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import time

from harness.kube import Obj, meta
from harness.paths import binaries_dir, previous_node_binary
from harness.testbed import Testbed
from harness.wait import wait_until
from test_lifecycle import WRITE_OK, Target, Writer, get_values, read_back, write_keys
from test_spec_changes import (
    ROLLOUT_TIMEOUT,
    apply_ok,
    cluster_manifest,
    node_pods,
    patch_cluster,
    paused_for,
    uids,
    wait_settled,
)

log = logging.getLogger("controlplane.test_upgrades")

NS = "default"
PREVIOUS_IMAGE = "registry.example/dynamo-node-previous:9a6699b"
CURRENT_IMAGE = "registry.example/dynamo-node:upgraded"
# What a node logs when it refuses a peer or is refused by one
# (node/src/transport/handshake.rs).
REFUSALS = ("protocol mismatch", "is incompatible", "refusing the stream", "handshake failed")
READY_TIMEOUT = 180.0


def image_ids(testbed: Testbed, pods: list[Obj]) -> dict[str, str]:
    """Per pod, the imageID of its running container: the digest of the
    local binary the kubelet stand-in ran."""
    statuses = {meta(p)["name"]: p["status"].get("containerStatuses") or [{}] for p in pods}
    return {name: status[0].get("imageID", "") for name, status in statuses.items()}


def image(pod: Obj) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def serving(testbed: Testbed, name: str) -> list[Obj]:
    """The cluster's node pods that are Ready and not being deleted."""
    return [
        p for p in node_pods(testbed, name) if Testbed.pod_ready(p) and not meta(p).get("deletionTimestamp")
    ]


def mixed(testbed: Testbed, name: str, images: set[str]) -> list[Obj] | None:
    """The three pods, if all serve and both `images` are among them."""
    pods = serving(testbed, name)
    return pods if len(pods) == 3 and {image(p) for p in pods} == images else None


def write_all_replicas(testbed: Testbed, pod: Obj, key: str) -> bytes:
    """Writes `key` through `pod` with `w=3`, which is acknowledged only once
    all three replicas (nodes of either release) took it; retried while
    the nodes notice each other (a replaced node was just marked down)."""
    value = f"{key} through {meta(pod)['name']} ({image(pod)})".encode()
    answers: list[str] = []

    def acknowledged() -> bool:
        try:
            status, body = testbed.node_http(pod, "PUT", f"/v1/kv/{key}?w=3", value, timeout=5.0)
        except (OSError, http.client.HTTPException) as error:
            status, body = 0, repr(error).encode()
        answers.append(f"{status} {body[:200]!r}")
        return status in WRITE_OK

    try:
        wait_until(f"w=3 write of {key} through {meta(pod)['name']}", acknowledged, 30, 1.0)
    except TimeoutError as error:
        raise AssertionError(f"{error}; answers: {answers[-3:]}") from None
    return value


def check_attributes_refused(testbed: Testbed, pod: Obj) -> None:
    """A write with a TTL through a pod of this release, while a node of
    the previous one serves, answers `503 attributes_unavailable` (that
    node could not keep the expiry) and stores nothing."""
    key = f"ttl-{meta(pod)['name']}-{secrets.token_hex(3)}"
    status, body = testbed.node_http(pod, "PUT", f"/v1/kv/{key}?ttl=60", b"expiring", timeout=10.0)
    assert status == 503 and b"attributes_unavailable" in body, f"{status} {body[:300]!r}"
    assert get_values(testbed, pod, key)[0] == 404, "the refused write was stored"


def roll(
    testbed: Testbed, target: Target, new_image: str, before: list[Obj]
) -> tuple[list[Obj], dict[str, bytes]]:
    """Changes `spec.image` to `new_image` while a client writes, holds the
    rollout half-way (`spec.paused`, once a pod of the new image serves)
    to write with `w=3` through every pod of the mixed cluster, then lets it
    finish. The pods once settled, and every acknowledged write."""
    name = target.name
    images = {image(before[0]), new_image}
    writer = Writer(testbed, target)
    writer.start()
    try:
        patch_cluster(testbed, name, {"spec": {"image": new_image}})
        wait_until(
            f"a pod of {new_image} serving",
            lambda: any(image(p) == new_image for p in serving(testbed, name)),
            ROLLOUT_TIMEOUT,
            0.3,
        )
        patch_cluster(testbed, name, {"spec": {"paused": True}})
        # A reconcile that began before the pause may still take one more
        # step; once the status says paused for this generation, none can.
        wait_until("Paused=True", lambda: paused_for(testbed, name), 60, 0.5)
        pods = wait_until("three pods of both images serving", lambda: mixed(testbed, name, images), 120, 0.5)
        held = time.monotonic()
        log.info("held mixed: %s", {meta(p)["name"]: image(p) for p in pods})
        written = {}
        for pod in pods:
            key = f"mixed-{meta(pod)['name']}-{secrets.token_hex(3)}"
            written[key] = write_all_replicas(testbed, pod, key)
            if image(pod) == CURRENT_IMAGE:
                check_attributes_refused(testbed, pod)
        time.sleep(2.0)
        during = writer.acked_between(held, time.monotonic())
        assert mixed(testbed, name, images), "the cluster stopped being mixed while held"
        patch_cluster(testbed, name, {"spec": {"paused": False}})
        pods = wait_settled(testbed, name, 3, replaced=uids(before), what=f"rolled out to {new_image}")
    finally:
        writer.stop()
    acked = writer.acknowledged()
    log.info(
        "rollout to %s: %d writes acknowledged, %d while held mixed; failures %s, last %s",
        new_image,
        len(acked),
        during,
        writer.failures,
        writer.last_failures,
    )
    assert during > 0, f"no write acknowledged while the cluster was held mixed; failures {writer.failures}"
    return pods, acked | written


def check_read_back(testbed: Testbed, pods: list[Obj], acked: dict[str, bytes]) -> None:
    """Every acknowledged write reads back, through each pod in turn and
    with all three replicas answering (r=3)."""
    problems = read_back(testbed, pods, acked)
    assert not problems, f"{len(problems)} acknowledged writes not read back: {problems[:5]}"
    unread = [key for key in sorted(acked) if get_values(testbed, pods[0], key, r=3) != (200, [acked[key]])]
    assert not unread, f"{len(unread)} acknowledged writes not read back with r=3: {unread[:5]}"


def refusals(testbed: Testbed, name: str) -> list[str]:
    """Log lines of every node pod (all incarnations) that tell of a
    protocol refusal."""
    assert testbed.kubelet is not None
    lines = []
    for pod in (f"{name}-{zone}-0" for zone in ("zone-a", "zone-b", "zone-c")):
        logs = testbed.kubelet.pod_logs(NS, pod, tail=1_000_000)
        lines += [line for line in logs.splitlines() if any(r in line for r in REFUSALS)]
    return lines


def test_a_rolling_upgrade_from_the_previous_release_and_back_keeps_every_write(testbed: Testbed) -> None:
    """A 3-zone cluster on the previous release, keys written; `spec.image`
    changed to this release while a client writes: held half-way, pods of
    both releases serve together and a `w=3` write through each of them is
    acknowledged (a write with a TTL through a pod of this release is
    refused, `503 attributes_unavailable`); the writes go on; every pod ends on this release's binary
    (by digest), every acknowledged write reads back (also with r=3) and no
    node logs a protocol refusal. Rolled back to the previous image the
    same way, the data is all there."""
    previous, current = previous_node_binary(), binaries_dir() / "dynamo-node"
    testbed.start_nodes("zones")
    testbed.install_operator()
    assert testbed.kubelet is not None
    previous_id = testbed.kubelet.image_id(PREVIOUS_IMAGE, previous)
    current_id = testbed.kubelet.image_id(CURRENT_IMAGE, current)
    assert previous_id != current_id, "the previous release's binary is this one"
    name = "upgrade"
    target = Target(NS, name, 3)
    zones = [("zone-a", 1), ("zone-b", 1), ("zone-c", 1)]
    apply_ok(testbed, cluster_manifest(name, zones, image=PREVIOUS_IMAGE), name)
    began = time.monotonic()
    pods = wait_settled(testbed, name, 3, timeout=READY_TIMEOUT, what="Ready on the previous release")
    testbed.timings["cluster ready"] = time.monotonic() - began
    assert set(image_ids(testbed, pods).values()) == {previous_id}, image_ids(testbed, pods)
    before = write_keys(testbed, pods, "before-upgrade", 30)

    began = time.monotonic()
    pods, acked = roll(testbed, target, CURRENT_IMAGE, pods)
    testbed.timings["upgrade"] = time.monotonic() - began
    assert set(image_ids(testbed, pods).values()) == {current_id}, image_ids(testbed, pods)
    check_read_back(testbed, pods, before | acked)
    found = refusals(testbed, name)
    assert not found, f"protocol refusals in the node logs: {found[:5]}"

    began = time.monotonic()
    pods, rolled_back = roll(testbed, target, PREVIOUS_IMAGE, pods)
    testbed.timings["rollback"] = time.monotonic() - began
    assert set(image_ids(testbed, pods).values()) == {previous_id}, image_ids(testbed, pods)
    check_read_back(testbed, pods, before | acked | rolled_back)
    found = refusals(testbed, name)
    assert not found, f"protocol refusals in the node logs: {found[:5]}"
