"""Certificates on the real control plane: a cluster with `spec.tls` whose
Secret is renewed in place (as cert-manager does) keeps serving with the
new certificate and no pod restart, and a certificate peers would refuse
shows in the `TlsCertificate` condition.

Certificates are made with the `openssl` command line (harness/pki.py).
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
from pathlib import Path

from harness import pki
from harness.kube import Obj, meta
from harness.testbed import Testbed
from harness.wait import wait_until

NS = "default"
NAME = "tlsdemo"
ZONE = "main"
READY_TIMEOUT = 180.0


def issue(directory: Path, ca: str, leaf: str) -> tuple[bytes, bytes]:
    """A certificate `leaf` signed by CA `ca` for the cluster's pods and
    client Service: (PEM cert, PEM key)."""
    return pki.issue(directory, ca, leaf, pki.cluster_names(NS, NAME, [ZONE]))


def put_secret(testbed: Testbed, cert: bytes, key: bytes, ca: bytes) -> None:
    assert testbed.kube is not None
    data = {k: base64.b64encode(v).decode() for k, v in (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca))}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{NAME}-tls", "namespace": NS},
        "type": "kubernetes.io/tls",
        "data": data,
    }
    testbed.kube.apply(secret, field_manager="cert-manager", namespace=NS)


def served_certificate(pod: Obj) -> bytes:
    """The DER certificate the node serves on its client port."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((pod["status"]["podIP"], 7000), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_to_der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def certificate_condition(testbed: Testbed, status: str) -> Obj | None:
    """The cluster's `TlsCertificate` condition if its status is `status`."""
    found = Testbed.condition(testbed.cluster(NS, NAME), "TlsCertificate")
    return found if found and found["status"] == status else None


def nudge(testbed: Testbed, value: str) -> None:
    """Asks for a reconcile now (the operator does not watch Secrets and
    looks at a settled cluster every 5 minutes)."""
    testbed.kubectl("annotate", "-n", NS, "dync", NAME, f"test/nudge={value}", "--overwrite")


def node_pods(testbed: Testbed) -> list[Obj]:
    return testbed.node_pods(NS, NAME)


def cluster_ready(testbed: Testbed) -> list[Obj] | None:
    return testbed.ready_cluster(NS, NAME, 3)


def test_a_certificate_renewed_in_place_is_served_without_a_restart(testbed: Testbed) -> None:
    """A 3-node cluster with spec.tls reaches Ready over mutual TLS and
    reports TlsCertificate=True/Valid. The Secret renewed in place (new
    leaf, same CA): every node serves the new certificate, no pod restarts,
    writes and reads keep working. A leaf of another CA in the Secret:
    TlsCertificate=False/NotFromCa; put back a good leaf and it is
    True/Valid again."""
    work = testbed.directory / "pki"
    work.mkdir()
    ca_pem = pki.make_ca(work, "cluster-ca").read_bytes()
    first_cert, first_key = issue(work, "cluster-ca", "first")
    put_secret(testbed, first_cert, first_key, ca_pem)
    testbed.start_nodes("single")
    testbed.install_operator()
    assert testbed.kube is not None
    cluster = {
        "apiVersion": "kv.dynamo.dev/v1alpha1",
        "kind": "DynamoCluster",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "image": "dynamo-node:0.1.0",
            "zones": [{"name": ZONE, "replicas": 3}],
            "partitions": 64,
            "storage": {"size": "1Gi"},
            "tls": {"secretName": f"{NAME}-tls"},
        },
    }
    testbed.kube.apply(cluster, field_manager="test", namespace=NS)
    testbed.node_tls = ssl.create_default_context(cadata=ca_pem.decode())
    testbed.node_tls.check_hostname = False  # pods are reached by IP; the chain is still checked
    try:
        pods = wait_until("the TLS cluster Ready", lambda: cluster_ready(testbed), READY_TIMEOUT, 1.0)
        condition = wait_until("TlsCertificate=True", lambda: certificate_condition(testbed, "True"), 60, 1.0)
        assert condition["reason"] == "Valid", condition
        uids = {meta(p)["uid"] for p in pods}
        status, body = testbed.node_http(pods[0], "PUT", "/v1/kv/before?w=3", b"first certificate")
        assert status == 204, (status, body)

        began = time.monotonic()
        second_cert, second_key = issue(work, "cluster-ca", "second")
        put_secret(testbed, second_cert, second_key, ca_pem)
        renewed = pem_to_der(second_cert)
        for pod in pods:
            wait_until(
                f"{meta(pod)['name']} serving the renewed certificate",
                lambda pod=pod: served_certificate(pod) == renewed,
                60,
                1.0,
            )
        testbed.timings["renewed certificate served"] = time.monotonic() - began
        assert {meta(p)["uid"] for p in node_pods(testbed)} == uids, "no pod was restarted"
        status, body = testbed.node_http(pods[1], "PUT", "/v1/kv/after?w=3", b"second certificate")
        assert status == 204, (status, body)
        for key in ("before", "after"):
            status, _ = testbed.node_http(pods[2], "GET", f"/v1/kv/{key}?r=3")
            assert status == 200, (key, status)

        pki.make_ca(work, "stranger-ca")
        foreign_cert, foreign_key = issue(work, "stranger-ca", "foreign")
        put_secret(testbed, foreign_cert, foreign_key, ca_pem)
        nudge(testbed, "foreign")

        condition = wait_until(
            "TlsCertificate=False", lambda: certificate_condition(testbed, "False"), 60, 1.0
        )
        assert condition["reason"] == "NotFromCa", condition

        put_secret(testbed, second_cert, second_key, ca_pem)
        nudge(testbed, "restored")

        condition = wait_until(
            "TlsCertificate=True again", lambda: certificate_condition(testbed, "True"), 120, 1.0
        )
        assert condition["reason"] == "Valid", condition
    finally:
        testbed.node_tls = None
