"""Shared fixtures: the chart rendered with several value sets, the CRDs, and
validators for Kubernetes' own kinds (kubernetes-validate, strict), for
DynamoClusters (the CRD's openAPIV3Schema, with jsonschema) and for the
Prometheus Operator's PodMonitor and ServiceMonitor (the openAPIV3Schema of
its published CRDs, from its Go module)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
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
CUSTOM_KINDS = {"DynamoCluster", "ServiceMonitor", "PodMonitor"}

# The Prometheus Operator release whose CRDs (in its root Go module, under
# example/prometheus-operator-crd/) the chart's monitors are checked
# against, with the module's checksum as go.sum records it.
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
PROMETHEUS_OPERATOR_SUM = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
MONITORING_KINDS = {"PodMonitor": "podmonitors", "ServiceMonitor": "servicemonitors"}

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
        "nodeMetrics": {"podMonitor": {"enabled": True}},
        "tracing": {"otlpEndpoint": "http://jaeger-collector.observability:4318"},
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
        "backups": {"volume": {"claimName": "dynamo-backups"}},
    },
    "monitoring": {
        "nodeMetrics": {
            "podMonitor": {
                "enabled": True,
                "port": "internal",
                "interval": "15s",
                "scrapeTimeout": "5s",
                "labels": {"release": "prom"},
                "endpoint": {"scheme": "https", "tlsConfig": {"insecureSkipVerify": True}},
            }
        },
        "metrics": {"serviceMonitor": {"enabled": True}},
        "grafanaDashboard": {
            "enabled": True,
            "namespace": "monitoring",
            "annotations": {"grafana_folder": "KV"},
        },
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
    return crd_schema(dynamocluster_crd(), api_version)


def crd_schema(crd: dict, api_version: str) -> dict:
    """The openAPIV3Schema of `api_version` (group/version) in `crd`, closed
    (see dynamocluster_schema)."""
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
    validate_custom(doc, dynamocluster_crd())


def validate_custom(doc: dict, crd: dict) -> None:
    """Raises jsonschema.ValidationError (or AssertionError for a wrong
    apiVersion or kind) unless `crd`'s closed schema accepts doc. The CEL
    rules (x-kubernetes-validations) are not evaluated."""
    assert doc["kind"] == crd["spec"]["names"]["kind"], f"{doc['kind']} is not {crd['spec']['names']['kind']}"
    schema = crd_schema(crd, doc["apiVersion"])
    # The API server checks apiVersion, kind and metadata itself.
    schema["properties"] = {
        k: v for k, v in schema.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")
    }
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    jsonschema.Draft7Validator(schema).validate(body)


def go_module_dir(module: str, version: str, checksum: str) -> Path:
    """The directory of a published Go module in the machine's module cache,
    downloaded by `go mod download` (through the Go module proxy) when it is
    not there yet, and checked against its go.sum checksum."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert Path(go).exists(), "Go is needed to fetch the Prometheus Operator's CRDs (go mod download)"
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        # Outside any module or workspace of the repository.
        cwd=tempfile.gettempdir(),
        env={**os.environ, "GOWORK": "off", "GOFLAGS": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"go mod download {module}@{version}: {result.stderr}{result.stdout}"
    info = json.loads(result.stdout)
    assert info.get("Sum") == checksum, f"{module}@{version}: checksum {info.get('Sum')}, expected {checksum}"
    return Path(info["Dir"])


@pytest.fixture(scope="session")
def monitoring_crds() -> dict[str, dict]:
    """The Prometheus Operator's PodMonitor and ServiceMonitor CRDs, by kind."""
    root = go_module_dir(PROMETHEUS_OPERATOR_MODULE, PROMETHEUS_OPERATOR_VERSION, PROMETHEUS_OPERATOR_SUM)
    crds = {}
    for kind, plural in MONITORING_KINDS.items():
        path = root / "example" / "prometheus-operator-crd" / f"monitoring.coreos.com_{plural}.yaml"
        (crd,) = load_yaml_all(path.read_text())
        assert crd["spec"]["names"]["kind"] == kind, path
        crds[kind] = crd
    return crds


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
