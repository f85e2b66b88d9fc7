"""Shared fixtures: the chart rendered with several value sets, the CRDs, and
validators for Kubernetes' own kinds (kubernetes-validate, strict) and for
DynamoClusters (the CRD's openAPIV3Schema, with jsonschema)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dynamo-operator"
CRDS = REPO / "crds"
MANIFESTS = REPO / "manifests"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the
# newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version()]

# Custom resources: kubernetes-validate has no schema for them.
CUSTOM_KINDS = {"DynamoCluster", "ServiceMonitor"}

_spec = importlib.util.spec_from_file_location("render_manifests", REPO / "scripts" / "render-manifests.py")
render_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_manifests)

# Value sets the chart is linted, rendered and validated with.
VALUE_SETS = {
    "defaults": {},
    "namespaced-ha": {
        "watchNamespaces": ["team-b"],
        "replicaCount": 2,
        "exampleCluster": {"enabled": True, "namespace": "team-b"},
        "metrics": {"port": 9090, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    },
    "existing-service-account": {
        "fullnameOverride": "dyn-op",
        "serviceAccount": {"create": False, "name": "custom-sa"},
        "image": {"repository": "registry.example/dynamo-operator", "tag": "1.2.3", "pullPolicy": "Always"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "dynamo", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                            ]
                        }
                    ]
                }
            }
        },
        "podAnnotations": {"example.com/scrape": "true"},
    },
}
RELEASE = "dyn"
NAMESPACE = "ops"


def load_yaml_all(text: str) -> list[dict]:
    """Documents as Go's YAML 1.1 reader (kubectl, Helm) sees them."""
    return render_manifests.load_all(text)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {
        name: render_manifests.render_chart(values, name=RELEASE, namespace=NAMESPACE)
        for name, values in VALUE_SETS.items()
    }


def crd_documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(CRDS.glob("*.yaml")):
        docs.extend((path, doc) for doc in load_yaml_all(path.read_text()))
    return docs


def dynamocluster_crd() -> dict:
    crds = [doc for _, doc in crd_documents() if doc["spec"]["names"]["kind"] == "DynamoCluster"]
    assert len(crds) == 1, f"expected one DynamoCluster CRD in crds/, found {len(crds)}"
    return crds[0]


def dynamocluster_schema(api_version: str) -> dict:
    """The openAPIV3Schema of `api_version` (group/version), closed: a field
    the schema does not name is an error, as with kubectl's default
    --validate=strict."""
    crd = dynamocluster_crd()
    group, _, version = api_version.partition("/")
    assert group == crd["spec"]["group"], f"apiVersion {api_version} is not in group {crd['spec']['group']}"
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    assert version in served, f"apiVersion {api_version}: the CRD serves only {sorted(served)}"
    return close_schema(copy.deepcopy(served[version]["schema"]["openAPIV3Schema"]))


def close_schema(node: dict) -> dict:
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return node
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for child in node.get("properties", {}).values():
        close_schema(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            close_schema(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for child in node.get(key, []):
            close_schema(child)
    return node


def validate_dynamocluster(doc: dict) -> None:
    """Raises jsonschema.ValidationError (or AssertionError for a wrong
    apiVersion) unless the CRD's schema accepts doc."""
    schema = dynamocluster_schema(doc["apiVersion"])
    # The API server checks apiVersion, kind and metadata itself.
    schema["properties"] = {
        k: v for k, v in schema.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")
    }
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.Draft7Validator(schema).validate(body)


def validate_kubernetes(doc: dict, version: str) -> None:
    """Raises AssertionError with a short message unless the strict schema of
    Kubernetes `version` accepts doc."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path)
        raise AssertionError(
            f"{doc['kind']}/{doc['metadata'].get('name')} invalid for Kubernetes "
            f"{version} at {where or '<root>'}: {error.message}"
        ) from None


def non_string_keys(node, path="") -> list[str]:
    """Mapping keys that a YAML 1.1 reader did not read as strings (`n: 3`)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                found.append(f"{path}/{key!r}")
            found.extend(non_string_keys(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(non_string_keys(value, f"{path}[{i}]"))
    return found
