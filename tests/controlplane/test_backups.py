"""Backups run by the operator on the real control plane, against a real
S3 server (SeaweedFS, harness/s3.py):

- a `DynamoBackup` of a 3-node cluster with TLS (and the generated auth)
  reaches `Completed` with its totals, the `Complete` condition and
  Events, and its objects are in the bucket;
- a `DynamoBackupSchedule` every 10 s makes backups and keeps the newest
  two: older ones are deleted with their objects;
- a new cluster with `spec.restoreFrom` holds exactly the backed-up data
  (siblings and tombstones too, nothing written after the backup) once
  its `Restored` condition is true;
- a `DynamoRestore` into the running source cluster loses nothing newer;
- deleting a backup whose `deletionPolicy` is `Retain` leaves its objects;
- deleting the namespace ends although its scheduled backups
  (`deletionPolicy: Delete`) lost their credentials Secret first (the
  namespace controller deletes in no set order): their objects stay.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import pki
from harness.kube import Obj, meta
from harness.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server
from harness.testbed import DYNAMO_API, Testbed
from harness.wait import Abort, wait_until

NS = "backups"
SOURCE = "src"
COPY = "copy"
ZONE = "main"
IMAGE = "dynamo-node:0.1.0"
READY_TIMEOUT = 240.0
TRANSFER_TIMEOUT = 180.0


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server(tmp_path / "s3").start()
    try:
        yield server
    finally:
        server.stop()


def resource_path(plural: str, name: str | None = None) -> str:
    path = f"{DYNAMO_API}/namespaces/{NS}/{plural}"
    return f"{path}/{name}" if name else path


def s3_target(server: S3Server) -> Obj:
    return {
        "s3": {
            "bucket": BUCKET,
            "prefix": "team",
            "endpoint": server.endpoint,
            "credentialsSecret": "s3-credentials",
        }
    }


def put_secret(testbed: Testbed, name: str, data: dict[str, bytes], kind: str = "Opaque") -> None:
    assert testbed.kube is not None
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "type": kind,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    testbed.kube.apply(secret, field_manager="test", namespace=NS)


def cluster(name: str, **extra: Any) -> Obj:
    return {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "image": IMAGE,
            "zones": [{"name": ZONE, "replicas": 3}],
            "partitions": 64,
            "storage": {"size": "1Gi"},
            **extra,
        },
    }


def ready(testbed: Testbed, name: str) -> list[Obj]:
    return wait_until(f"{name} Ready", lambda: testbed.ready_cluster(NS, name, 3), READY_TIMEOUT, 1.0)


def transfer_done(testbed: Testbed, plural: str, name: str) -> Obj:
    """The resource once `Completed`; a `Failed` one ends the wait."""
    assert testbed.kube is not None

    def done() -> Obj | None:
        obj = testbed.kube.get(resource_path(plural, name))  # type: ignore[union-attr]
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Failed":
            raise Abort(f"{plural}/{name} failed: {obj['status']}")
        return obj if phase == "Completed" else None

    return wait_until(f"{plural}/{name} Completed", done, TRANSFER_TIMEOUT, 1.0)


def events_of(testbed: Testbed, name: str) -> set[str]:
    assert testbed.kube is not None
    listed = testbed.kube.get(f"/apis/events.k8s.io/v1/namespaces/{NS}/events")
    return {
        e.get("reason", "") for e in listed.get("items", []) if (e.get("regarding") or {}).get("name") == name
    }


def write(testbed: Testbed, pods: list[Obj], key: str, value: bytes, context: str | None = None) -> None:
    headers = {"X-Dynamo-Context": context} if context else None
    status, body = testbed.node_http(pods[0], "PUT", f"/v1/kv/{key}?w=3", value, headers=headers)
    assert status in (200, 201, 204), (key, status, body)


def state(testbed: Testbed, pod: Obj, key: str) -> tuple[int, Any]:
    """A key as a client reads it with R=3: status and the JSON siblings."""
    status, body = testbed.node_http(pod, "GET", f"/v1/kv/{key}?r=3", headers={"Accept": "application/json"})
    return status, (json.loads(body) if status in (200, 300) else None)


def context_of(testbed: Testbed, pod: Obj, key: str) -> str:
    status, found = state(testbed, pod, key)
    assert status in (200, 300), (key, status)
    return str(found["context"])


def write_data_set(testbed: Testbed, pods: list[Obj]) -> list[str]:
    """Plain values, a key with two siblings and a deleted key."""
    keys = [f"plain-{i}" for i in range(30)]
    for i, key in enumerate(keys):
        write(testbed, [pods[i % 3]], key, f"value {i}".encode())
    for i, pod in enumerate(pods[:2]):
        status, body = testbed.node_http(pod, "PUT", "/v1/kv/siblings?w=3", f"side {i}".encode())
        assert status in (200, 201, 204), (status, body)
    write(testbed, pods, "deleted", b"doomed")
    context = context_of(testbed, pods[0], "deleted")
    status, body = testbed.node_http(
        pods[1], "DELETE", "/v1/kv/deleted?w=3", headers={"X-Dynamo-Context": context}
    )
    assert status in (200, 204), (status, body)
    return [*keys, "siblings", "deleted"]


def test_backup_schedule_restore_from_and_restore_on_the_real_control_plane(
    testbed: Testbed, s3: S3Server
) -> None:
    """The whole operator flow of backups, against SeaweedFS."""
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.kube is not None
    kube = testbed.kube
    testbed.kubectl("create", "namespace", NS)
    testbed.namespaces.add(NS)
    put_secret(
        testbed,
        "s3-credentials",
        {"AWS_ACCESS_KEY_ID": ACCESS_KEY.encode(), "AWS_SECRET_ACCESS_KEY": SECRET_KEY.encode()},
    )
    work = testbed.directory / "pki"
    work.mkdir()
    ca_pem = pki.make_ca(work, "cluster-ca").read_bytes()
    cert, key = pki.issue(work, "cluster-ca", "src", pki.cluster_names(NS, SOURCE, [ZONE]))
    put_secret(testbed, "src-tls", {"tls.crt": cert, "tls.key": key, "ca.crt": ca_pem}, "kubernetes.io/tls")
    kube.apply(cluster(SOURCE, tls={"secretName": "src-tls"}), field_manager="test", namespace=NS)
    tls = ssl.create_default_context(cadata=ca_pem.decode())
    tls.check_hostname = False  # pods are reached by IP; the chain is still checked
    testbed.node_tls = tls
    source = ready(testbed, SOURCE)
    keys = write_data_set(testbed, source)
    before = {k: state(testbed, source[2], k) for k in keys}
    assert before["siblings"][0] == 300 and before["deleted"][0] == 404, before

    # An on-demand backup.
    backup = {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoBackup",
        "metadata": {"name": "first", "namespace": NS},
        "spec": {"cluster": SOURCE, "target": s3_target(s3), "chunkMiB": 1},
    }
    kube.apply(backup, field_manager="test", namespace=NS)
    done = transfer_done(testbed, "dynamobackups", "first")
    status = done["status"]
    assert status["backupId"] == "first" and status["location"] == f"s3://{BUCKET}/team", status
    assert status["records"] >= 3 * len(keys) and status["storedBytes"] > 0 and status["nodes"] == 3, status
    assert Testbed.condition(done, "Complete")["status"] == "True", status  # type: ignore[index]
    assert {"Started", "Completed"} <= events_of(testbed, "first")
    stored = s3.objects("team/first")
    assert "team/first/manifest.json" in stored and any(o.endswith(".chunk") for o in stored), stored

    # Written after the backup: in the source, not in a restored copy.
    write(testbed, source, "later", b"after the backup")
    write(testbed, source, "plain-1", b"overwritten after", context_of(testbed, source[0], "plain-1"))
    newest = {k: state(testbed, source[1], k) for k in [*keys, "later"]}

    # A schedule every 10 s keeping two.
    schedule = {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoBackupSchedule",
        "metadata": {"name": "often", "namespace": NS},
        "spec": {"cluster": SOURCE, "schedule": "*/10 * * * * *", "target": s3_target(s3), "keep": 2},
    }
    kube.apply(schedule, field_manager="test", namespace=NS)
    seen: set[str] = set()

    def pruned() -> list[str] | None:
        listed = kube.get(resource_path("dynamobackups"), labelSelector="kv.dynamo.dev/backup-schedule=often")
        names = {meta(b)["name"] for b in listed["items"]}
        seen.update(names)
        completed = sorted(
            meta(b)["name"] for b in listed["items"] if (b.get("status") or {}).get("phase") == "Completed"
        )
        gone = sorted(seen - names)
        return gone if len(gone) >= 1 and len(completed) == 2 else None

    gone = wait_until("a scheduled backup pruned, two kept", pruned, 150, 1.0)
    for name in gone:
        wait_until(f"{name}'s objects deleted", lambda name=name: not s3.objects(f"team/{name}"), 60, 1.0)
    found = kube.get(resource_path("dynamobackupschedules", "often"))
    assert found["status"]["lastSuccessfulBackup"], found["status"]
    assert Testbed.condition(found, "Scheduled")["status"] == "True", found["status"]  # type: ignore[index]
    assert "Pruned" in events_of(testbed, "often")
    kube.patch(resource_path("dynamobackupschedules", "often"), {"spec": {"suspend": True}})

    # A new cluster restored from the first backup.
    testbed.node_tls = None
    kube.apply(cluster(COPY, restoreFrom={"backup": "first"}), field_manager="test", namespace=NS)
    copy = ready(testbed, COPY)
    restored = testbed.wait_condition(NS, COPY, "Restored", timeout=TRANSFER_TIMEOUT)
    assert Testbed.condition(restored, "Restored")["reason"] == "Restored"  # type: ignore[index]
    after = {k: state(testbed, copy[1], k) for k in keys}
    for k in keys:
        assert after[k][0] == before[k][0], (k, after[k], before[k])
        if k != "siblings":
            assert after[k] == before[k], (k, after[k], before[k])
    assert sorted(v["value"] for v in after["siblings"][1]["siblings"]) == sorted(
        v["value"] for v in before["siblings"][1]["siblings"]
    )
    assert state(testbed, copy[0], "later")[0] == 404, "a write after the backup is not restored"
    made = kube.get(resource_path("dynamorestores", f"{COPY}-restore"))
    assert made["metadata"]["ownerReferences"][0]["name"] == COPY, made["metadata"]

    # A restore into the running source cluster loses nothing newer.
    testbed.node_tls = tls
    restore = {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoRestore",
        "metadata": {"name": "back-in", "namespace": NS},
        "spec": {"cluster": SOURCE, "source": {"backupId": "first", "target": s3_target(s3)}},
    }
    kube.apply(restore, field_manager="test", namespace=NS)
    merged = transfer_done(testbed, "dynamorestores", "back-in")
    assert merged["status"]["records"] == status["records"], merged["status"]
    again = {k: state(testbed, source[2], k) for k in [*keys, "later"]}
    assert again == newest, "restoring an older backup changed nothing newer"

    # A retained backup's objects outlive its resource.
    kube.delete(resource_path("dynamobackups", "first"))
    wait_until(
        "backup first deleted", lambda: kube.get_opt(resource_path("dynamobackups", "first")) is None, 60, 1.0
    )
    assert "team/first/manifest.json" in s3.objects("team/first")

    # Deleting the namespace after the credentials went: the scheduled
    # backups' objects cannot be deleted and stay; the namespace goes.
    kept = sorted(
        meta(b)["name"]
        for b in kube.get(resource_path("dynamobackups"))["items"]
        if (b.get("status") or {}).get("phase") == "Completed"
    )
    assert kept and all(s3.objects(f"team/{name}") for name in kept), kept
    kube.delete(f"/api/v1/namespaces/{NS}/secrets/s3-credentials")
    kube.delete(f"/api/v1/namespaces/{NS}")
    wait_until(f"namespace {NS} deleted", lambda: kube.get_opt(f"/api/v1/namespaces/{NS}") is None, 120, 1.0)
    testbed.namespaces.discard(NS)
    for name in kept:
        assert f"team/{name}/manifest.json" in s3.objects(f"team/{name}"), f"{name}: left whole"
