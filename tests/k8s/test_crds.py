"""crds/: valid CustomResourceDefinitions with structural schemas, the
contract's names, and the chart's copy identical."""

from __future__ import annotations

import pytest

from conftest import CHART, CRDS, KUBE_VERSIONS, crd_documents, non_string_keys, validate_kubernetes

INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE = "x-kubernetes-preserve-unknown-fields"


def structural_problems(node: dict, path: str = "") -> list[str]:
    """Where a schema is not structural, or leaves a hole whose content the
    API server would silently prune."""
    problems = []
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    if not node.get("type") and not node.get(INT_OR_STRING) and not node.get(PRESERVE):
        problems.append(f"{path or '<root>'}: no type (nor {INT_OR_STRING} or {PRESERVE})")
    if (
        node.get("type") == "object"
        and not node.get(PRESERVE)
        and "properties" not in node
        and "additionalProperties" not in node
    ):
        problems.append(f"{path or '<root>'}: object with no properties: its content would be pruned")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    if "properties" in node and isinstance(node.get("additionalProperties"), dict):
        problems.append(f"{path}: both properties and additionalProperties")
    for name, child in node.get("properties", {}).items():
        problems.extend(structural_problems(child, f"{path}.{name}"))
    if isinstance(node.get("items"), dict):
        problems.extend(structural_problems(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        problems.extend(structural_problems(node["additionalProperties"], f"{path}{{}}"))
    for key in ("allOf", "anyOf", "oneOf", "not"):
        # Logical junctors may not declare types or defaults of their own.
        children = node.get(key, [])
        for child in children if isinstance(children, list) else [children]:
            for forbidden in ("type", "default", "additionalProperties", "nullable", "description"):
                if forbidden in child:
                    problems.append(f"{path}.{key}: sets {forbidden}")
    return problems


def test_there_is_a_dynamocluster_crd():
    docs = crd_documents()
    assert docs, "no crds/*.yaml"
    kinds = [doc["spec"]["names"]["kind"] for _, doc in docs]
    assert kinds.count("DynamoCluster") == 1


def test_each_crd_once():
    names = [doc["metadata"]["name"] for _, doc in crd_documents()]
    assert len(names) == len(set(names)), f"a CRD is defined twice in crds/: {sorted(names)}"


@pytest.mark.parametrize("path,crd", crd_documents(), ids=lambda v: getattr(v, "name", ""))
def test_crd_is_valid_and_structural(path, crd):
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and crd["kind"] == "CustomResourceDefinition"
    assert not non_string_keys(crd), f"{path.name}: keys a YAML 1.1 reader takes for non-strings"
    for version in KUBE_VERSIONS:
        validate_kubernetes(crd, version)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert path.name == f"{crd['metadata']['name']}.yaml"
    storage = [v["name"] for v in spec["versions"] if v.get("storage")]
    assert len(storage) == 1, f"exactly one storage version, found {storage}"
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema.get("type") == "object"
        problems = structural_problems(schema)
        assert not problems, f"{version['name']}: " + "; ".join(problems)


def test_dynamocluster_contract():
    (crd,) = [doc for _, doc in crd_documents() if doc["spec"]["names"]["kind"] == "DynamoCluster"]
    spec = crd["spec"]
    assert spec["group"] == "kv.dynamo.dev"
    assert spec["scope"] == "Namespaced"
    assert "dync" in spec["names"].get("shortNames", [])
    assert spec["names"]["plural"] == "dynamoclusters"
    served = {v["name"]: v for v in spec["versions"] if v.get("served")}
    assert "v1alpha1" in served
    assert "status" in served["v1alpha1"].get("subresources", {}), "status must be a subresource"


def test_structural_check_finds_holes():
    assert structural_problems({"type": "object", "properties": {"a": {}}})
    assert structural_problems({"type": "object", "properties": {"a": {"type": "object"}}})
    assert structural_problems({"type": "object", "properties": {"a": {"type": "array"}}})
    assert not structural_problems(
        {
            "type": "object",
            "properties": {
                "a": {"type": "object", PRESERVE: True},
                "b": {INT_OR_STRING: True},
                "c": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    )


def test_chart_holds_an_identical_copy():
    sources = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert copies == sources, "helm/dynamo-operator/crds/ differs from crds/: run scripts/render-manifests.py"


def test_yaml11_checks_catch_unquoted_n():
    from conftest import load_yaml_all, render_manifests

    text = "replication:\n  n: 3\n  'r': 2\nrequired:\n- n\n- 'w'\nflag: true\n"
    (doc,) = load_yaml_all(text)
    assert non_string_keys(doc) == ["/replication/False"]
    assert render_manifests.yaml11_ambiguities(text) == ["line 2: n", "line 5: n"]


@pytest.mark.parametrize("path", sorted(CRDS.glob("*.yaml")), ids=lambda p: p.name)
def test_crd_reads_the_same_in_yaml_1_1(path):
    from conftest import render_manifests

    ambiguous = render_manifests.yaml11_ambiguities(path.read_text())
    assert not ambiguous, (
        f"{path.name}: kubectl and Helm read these plain scalars as booleans, quote them: {ambiguous}"
    )
