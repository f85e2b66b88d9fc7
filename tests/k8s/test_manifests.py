"""manifests/: generated from the chart and crds/ (never stale), valid for
Kubernetes as kubectl apply -f and kubectl kustomize read them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import (
    CUSTOM_KINDS,
    KUBE_VERSIONS,
    MANIFESTS,
    load_yaml_all,
    non_string_keys,
    render_manifests,
    validate_dynamocluster,
    validate_kubernetes,
)


def test_generated_files_are_up_to_date():
    stale = render_manifests.stale_files(render_manifests.generated())
    assert not stale, f"stale generated files, run scripts/render-manifests.py: {stale}"


def test_staleness_is_detected():
    files = render_manifests.generated()
    target = render_manifests.MANIFESTS / "install.yaml"
    files[target] = files[target] + b"# changed\n"
    assert "manifests/install.yaml" in render_manifests.stale_files(files)
    del files[render_manifests.CHART / "crds" / "dynamoclusters.kv.dynamo.dev.yaml"]
    assert any(
        s.startswith("helm/dynamo-operator/crds/") and "not generated" in s
        for s in render_manifests.stale_files(files)
    )


@pytest.mark.parametrize("path", sorted(MANIFESTS.rglob("*.yaml")), ids=lambda p: p.name)
def test_manifests_read_the_same_in_yaml_1_1(path):
    assert not render_manifests.yaml11_ambiguities(path.read_text())


def validate(doc):
    assert not non_string_keys(doc), f"{doc['kind']}: keys a YAML 1.1 reader takes for non-strings"
    if doc["kind"] == "DynamoCluster":
        validate_dynamocluster(doc)
    elif doc["kind"] not in CUSTOM_KINDS:
        for version in KUBE_VERSIONS:
            validate_kubernetes(doc, version)


def test_install_yaml():
    docs = load_yaml_all((MANIFESTS / "install.yaml").read_text())
    kinds = [d["kind"] for d in docs]
    assert kinds[:2] == ["Namespace", "ServiceAccount"] and "CustomResourceDefinition" in kinds
    assert kinds.index("CustomResourceDefinition") < kinds.index("Deployment")
    assert "DynamoCluster" not in kinds
    namespace = docs[0]["metadata"]["name"]
    for doc in docs:
        validate(doc)
        if "namespace" in doc["metadata"]:
            assert doc["metadata"]["namespace"] == namespace


def test_kustomize_build_is_valid_and_equals_install_yaml():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize manifests/` not checked")
    out = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS)], check=True, capture_output=True, text=True
    ).stdout
    built = load_yaml_all(out)
    for doc in built:
        validate(doc)

    def key(d):
        return d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]

    install = load_yaml_all((MANIFESTS / "install.yaml").read_text())
    assert sorted(built, key=key) == sorted(install, key=key)


@pytest.mark.parametrize("path", sorted((MANIFESTS / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_clusters(path):
    docs = load_yaml_all(path.read_text())
    assert [d["kind"] for d in docs] == ["DynamoCluster"]
    for doc in docs:
        validate(doc)
        assert "namespace" not in doc["metadata"], "examples go to kubectl's current namespace"
        spec = doc["spec"]
        replication = spec["replication"]
        members = sum(zone["replicas"] for zone in spec["zones"])
        n, r, w = replication["factor"], replication["readQuorum"], replication["writeQuorum"]
        assert 1 <= r <= n <= members
        assert 1 <= w <= n
        assert r + w > n, "quorums must overlap"
        assert spec["partitions"] & (spec["partitions"] - 1) == 0, "partitions must be a power of two"


def test_there_are_examples():
    assert (MANIFESTS / "examples" / "three-zones.yaml").exists()
