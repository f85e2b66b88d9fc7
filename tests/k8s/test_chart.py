"""The Helm chart: strict lint, rendering with default and other values,
every rendered object valid for Kubernetes, and least-privilege RBAC that
matches the operator's contract exactly."""

from __future__ import annotations

import copy
import re
import tomllib

import helm_python as helm
import jsonschema
import pytest
import yaml

from conftest import (
    CHART,
    CUSTOM_KINDS,
    KUBE_VERSIONS,
    MONITORING_KINDS,
    NAMESPACE,
    RELEASE,
    REPO,
    VALUE_SETS,
    non_string_keys,
    render_manifests,
    validate_custom,
    validate_dynamocluster,
    validate_kubernetes,
)

# What the operator may do in a namespace it watches (its contract): the
# DynamoClusters and their status, the objects it owns (server-side apply),
# the nodes' NetworkPolicy (applied by name, never listed or watched),
# pods for rolling restarts, claims (labelled, grown, deleted for replaced
# pods), events, get on secrets to read the auth, clients and TLS Secrets
# (and a backup target's credentials and CA), create on secrets for the
# generated <cluster>-auth Secret, and the backup resources: backups,
# schedules and restores with their status and finalizers (the operator
# creates backups for schedules and restores for restoreFrom, deletes
# backups for retention). (API group, resource, verb.) Beyond a namespace:
# get on the watched namespaces (NAMESPACE_GRANTS).
APPLY = {"get", "list", "watch", "create", "patch", "update", "delete"}
WATCH_GRANTS = (
    {("kv.dynamo.dev", "dynamoclusters", v) for v in ("get", "list", "watch", "patch", "update")}
    | {("kv.dynamo.dev", "dynamoclusters/status", v) for v in ("get", "patch", "update")}
    # Setting ownerReferences with blockOwnerDeletion needs update on the
    # owner's finalizers where OwnerReferencesPermissionEnforcement is on.
    | {("kv.dynamo.dev", "dynamoclusters/finalizers", "update")}
    | {
        ("kv.dynamo.dev", r, v)
        for r in ("dynamobackups", "dynamobackupschedules", "dynamorestores")
        for v in APPLY
    }
    | {
        ("kv.dynamo.dev", f"{r}/status", v)
        for r in ("dynamobackups", "dynamobackupschedules", "dynamorestores")
        for v in ("get", "patch", "update")
    }
    | {("kv.dynamo.dev", f"{r}/finalizers", "update") for r in ("dynamobackups", "dynamorestores")}
    | {("apps", "statefulsets", v) for v in APPLY}
    | {("", "services", v) for v in APPLY}
    | {("", "configmaps", v) for v in APPLY}
    | {("policy", "poddisruptionbudgets", v) for v in APPLY}
    | {("networking.k8s.io", "networkpolicies", v) for v in ("get", "create", "patch", "update", "delete")}
    | {("", "pods", v) for v in ("get", "list", "watch", "delete")}
    | {("", "persistentvolumeclaims", v) for v in ("get", "list", "patch", "delete")}
    | {("", "secrets", v) for v in ("get", "create")}
    | {("", "events", v) for v in ("create", "patch")}
    | {("events.k8s.io", "events", v) for v in ("create", "patch")}
)

# Whether a namespace is being deleted: a backup's cleanup stops waiting
# for a Secret that went with it. (API group, resource, verb.)
NAMESPACE_GRANT = ("", "namespaces", "get")


def objects(docs, kind=None, name=None):
    return [
        d
        for d in docs
        if (kind is None or d["kind"] == kind) and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs, kind, name=None):
    found = objects(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def grants(rules):
    """(group, resource, verb, resourceNames) for every combination a rule allows."""
    return {
        (group, resource, verb, tuple(rule.get("resourceNames", ())))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_lint_strict(values_name):
    for kube_version in KUBE_VERSIONS:
        report = helm.lint(
            str(CHART),
            VALUE_SETS[values_name],
            strict=True,
            kube_version=f"v{kube_version}",
            namespace=NAMESPACE,
        )
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, f"helm lint --strict ({kube_version}) with {values_name}: {problems}"
        assert report["total_charts_linted"] == 1


def test_lint_catches_a_broken_template(tmp_path):
    """The lint test above can fail: a chart with a template error does."""
    broken = tmp_path / "dynamo-operator"
    with helm.Chart.load(str(CHART)) as chart:
        chart.save_dir(str(tmp_path))
    (broken / "templates" / "broken.yaml").write_text(
        "kind: ConfigMap\nmetadata: {{ .Values.nope.deeper }}\n"
    )
    report = helm.lint(str(broken), strict=True)
    assert [m for m in report["messages"] if m["severity"] >= 2] or report["errors"]


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_every_rendered_object_is_valid(rendered, monitoring_crds, values_name):
    docs = rendered[values_name]
    assert docs, "the chart rendered nothing"
    for doc in docs:
        assert not non_string_keys(doc), f"{doc['kind']}: keys a YAML 1.1 reader takes for non-strings"
        if doc["kind"] == "DynamoCluster":
            validate_dynamocluster(doc)
        elif doc["kind"] in MONITORING_KINDS:
            validate_custom(doc, monitoring_crds[doc["kind"]])
        elif doc["kind"] not in CUSTOM_KINDS:
            for version in KUBE_VERSIONS:
                validate_kubernetes(doc, version)
        namespaced = doc["kind"] not in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
        assert ("namespace" in doc["metadata"]) == namespaced, f"{doc['kind']} namespace"


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_rendered_templates_read_the_same_in_yaml_1_1(values_name):
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(VALUE_SETS[values_name], name=RELEASE, namespace=NAMESPACE)
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            assert not render_manifests.yaml11_ambiguities(text), path


def test_strict_kubernetes_validation_rejects_unknown_fields(rendered):
    deployment = copy.deepcopy(one(rendered["defaults"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(AssertionError, match="livenesProbe"):
        validate_kubernetes(deployment, KUBE_VERSIONS[0])


def test_kinds_per_value_set(rendered):
    kinds = {name: sorted(d["kind"] for d in docs) for name, docs in rendered.items()}
    assert kinds["defaults"] == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
        ]
    )
    # A watched namespace: a Role and RoleBinding there, plus leader
    # election and the ClusterRole that gets the watched namespace.
    assert kinds["namespaced-ha"] == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "Deployment",
            "ServiceMonitor",
            "PodMonitor",
            "DynamoCluster",
        ]
    )
    assert "ServiceAccount" not in kinds["existing-service-account"]


def test_deployment(rendered):
    for name, docs in rendered.items():
        values = VALUE_SETS[name]
        deployment = one(docs, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["replicas"] == values.get("replicaCount", 1)
        assert set(deployment["spec"]["selector"]["matchLabels"].items()) <= set(
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        assert env["WATCH_NAMESPACE"]["value"] == ",".join(values.get("watchNamespaces", []))
        endpoint = values.get("tracing", {}).get("otlpEndpoint")
        assert env.get("DYNAMO_OTLP_ENDPOINT", {}).get("value") == endpoint, "tracing.otlpEndpoint"
        port = values.get("metrics", {}).get("port", 8080)
        assert f"--metrics-addr=0.0.0.0:{port}" in container["args"]
        assert "--lease-name=dynamo-operator" in container["args"]
        assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        image = values.get("image", {})
        assert (
            container["image"] == f"{image.get('repository', 'dynamo-operator')}:{image.get('tag', '0.1.0')}"
        )
        assert container["imagePullPolicy"] == image.get("pullPolicy", "IfNotPresent")
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for key in ("nodeSelector", "tolerations", "affinity"):
            assert pod.get(key) == values.get(key), key
        service_account = values.get("serviceAccount", {}).get("name") or deployment["metadata"]["name"]
        assert pod["serviceAccountName"] == service_account
        claim = values.get("backups", {}).get("volume", {}).get("claimName")
        if claim:
            assert "--backup-volume=/backups" in container["args"]
            assert container["volumeMounts"] == [{"name": "backups", "mountPath": "/backups"}]
            assert pod["volumes"] == [{"name": "backups", "persistentVolumeClaim": {"claimName": claim}}]
        else:
            assert not any(a.startswith("--backup-volume") for a in container["args"])
            assert "volumes" not in pod and "volumeMounts" not in container


def test_metrics_service_and_service_monitor(rendered):
    for name, docs in rendered.items():
        deployment = one(docs, "Deployment")
        service = one(docs, "Service")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert set(service["spec"]["selector"].items()) <= set(pod_labels.items())
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"
        monitors = objects(docs, "ServiceMonitor")
        enabled = VALUE_SETS[name].get("metrics", {}).get("serviceMonitor", {}).get("enabled", False)
        assert len(monitors) == int(enabled)
        for monitor in monitors:
            assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(
                service["metadata"]["labels"].items()
            )
            assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
            assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
            # The operator's series carry the cluster's namespace themselves.
            assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
            expected = VALUE_SETS[name]["metrics"]["serviceMonitor"].get("labels", {})
            assert expected.items() <= monitor["metadata"]["labels"].items()


def test_rbac_matches_the_contract_exactly(rendered):
    for name, docs in rendered.items():
        watch = VALUE_SETS[name].get("watchNamespaces", [])
        roles = {
            (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]): r
            for r in docs
            if r["kind"] in ("Role", "ClusterRole")
        }
        for role in roles.values():
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), f"{name}: wildcard in {role['kind']} {field}"
                assert "nonResourceURLs" not in rule
                if "secrets" in rule["resources"]:
                    # Reads the auth, clients and TLS Secrets by name and creates
                    # the generated auth Secret; listing or watching would expose
                    # every Secret of the namespace, update or delete could
                    # overwrite or remove credentials the operator does not own.
                    assert rule["resources"] == ["secrets"] and sorted(rule["verbs"]) == ["create", "get"], (
                        f"{name}: secrets beyond get and create in {role['kind']}"
                    )
        leader = [r for k, r in roles.items() if k[2].endswith("-leader-election")]
        assert len(leader) == 1 and leader[0]["kind"] == "Role"
        assert leader[0]["metadata"]["namespace"] == NAMESPACE
        assert grants(leader[0]["rules"]) == {
            ("coordination.k8s.io", "leases", "create", ()),
            ("coordination.k8s.io", "leases", "get", ("dynamo-operator",)),
            ("coordination.k8s.io", "leases", "update", ("dynamo-operator",)),
        }
        expected = {(g, r, v, ()) for g, r, v in WATCH_GRANTS}
        others = {
            k: r
            for k, r in roles.items()
            if not k[2].endswith("-leader-election") and not k[2].endswith("-namespaces")
        }
        getter = [r for k, r in roles.items() if k[2].endswith("-namespaces")]
        if watch:
            assert {k[0] for k in others} == {"Role"}, (
                f"{name}: no cluster-wide role beyond getting the namespaces when they are listed"
            )
            assert sorted(k[1] for k in others) == sorted(watch)
            assert len(getter) == 1 and getter[0]["kind"] == "ClusterRole", name
            assert grants(getter[0]["rules"]) == {(*NAMESPACE_GRANT, tuple(sorted(set(watch))))}, name
        else:
            assert list(k[0] for k in others) == ["ClusterRole"] and not getter
            expected |= {(*NAMESPACE_GRANT, ())}
        for role in others.values():
            assert grants(role["rules"]) == expected, f"{name}: {role['kind']} differs from the contract"


def test_bindings_point_at_rendered_roles_and_the_operator_account(rendered):
    for name, docs in rendered.items():
        deployment = one(docs, "Deployment")
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        roles = {
            (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"])
            for r in docs
            if r["kind"] in ("Role", "ClusterRole")
        }
        bindings = [b for b in docs if b["kind"] in ("RoleBinding", "ClusterRoleBinding")]
        assert len(bindings) == len(roles)
        for binding in bindings:
            ref = binding["roleRef"]
            namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
            assert (ref["kind"], namespace, ref["name"]) in roles, f"{name}: dangling roleRef {ref}"
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
            ]


def test_example_cluster(rendered):
    assert not objects(rendered["defaults"], "DynamoCluster"), "the example cluster must be opt-in"
    cluster = one(rendered["namespaced-ha"], "DynamoCluster")
    validate_dynamocluster(cluster)
    spec = cluster["spec"]
    assert cluster["metadata"]["namespace"] == "team-b"
    assert [z["name"] for z in spec["zones"]] == ["zone-a", "zone-b", "zone-c"]
    assert spec["replication"] == {"factor": 3, "readQuorum": 2, "writeQuorum": 2}
    assert spec["image"] == "dynamo-node:0.1.0"


def test_example_cluster_must_be_in_a_watched_namespace():
    values = {"watchNamespaces": ["team-a"], "exampleCluster": {"enabled": True}}
    with pytest.raises(helm.HelmError, match="not in watchNamespaces"):
        render_manifests.render_chart(values, name=RELEASE, namespace=NAMESPACE)
    values["exampleCluster"]["namespace"] = "team-a"
    (cluster,) = [
        d
        for d in render_manifests.render_chart(values, name=RELEASE, namespace=NAMESPACE)
        if d["kind"] == "DynamoCluster"
    ]
    assert cluster["metadata"]["namespace"] == "team-a"


def test_example_cluster_schema_rejects_mistakes(rendered):
    """The CRD check is strict: a misspelt field or a wrong type fails."""
    cluster = one(rendered["namespaced-ha"], "DynamoCluster")
    misspelt = copy.deepcopy(cluster)
    misspelt["spec"]["replicaton"] = misspelt["spec"].pop("replication")
    with pytest.raises(jsonschema.ValidationError):
        validate_dynamocluster(misspelt)
    wrong_type = copy.deepcopy(cluster)
    wrong_type["spec"]["zones"][0]["replicas"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        validate_dynamocluster(wrong_type)


@pytest.mark.parametrize(
    "values,mistake",
    [
        ({"watchNamespace": ["a"]}, "watchNamespace"),
        ({"watchNamespaces": "team-a"}, "watchNamespaces"),
        ({"replicaCount": "2"}, "replicaCount"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"metrics": {"port": 70000}}, "port"),
        ({"nodeMetrics": {"podMonitor": {"port": "metrics"}}}, "port"),
        ({"nodeMetrics": {"podMonitor": {"interval": "30 s"}}}, "interval"),
        ({"grafanaDashboard": {"label": {"grafana_dashboard": "1"}}}, "label"),
        ({"tracing": {"otlpEndpoint": "https://jaeger:4318"}}, "otlpEndpoint"),
        ({"backups": {"volume": {"claimName": "Not_A_Name"}}}, "claimName"),
        ({"backups": {"volumes": {}}}, "volumes"),
    ],
)
def test_values_schema_rejects_mistakes(values, mistake):
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(VALUE_SETS["defaults"])
        with pytest.raises(helm.HelmError, match=mistake):
            chart.validate_schema(values)


def test_watch_namespaces_are_deduplicated():
    docs = render_manifests.render_chart({"watchNamespaces": ["a", "a"]}, name=RELEASE, namespace=NAMESPACE)
    roles = [
        d for d in docs if d["kind"] == "Role" and not d["metadata"]["name"].endswith("-leader-election")
    ]
    assert [r["metadata"]["namespace"] for r in roles] == ["a"]


def test_several_watched_namespaces_get_a_role_each_and_one_list():
    """The operator takes a comma-separated WATCH_NAMESPACE, one watch each."""
    docs = render_manifests.render_chart({"watchNamespaces": ["a", "b"]}, name=RELEASE, namespace=NAMESPACE)
    roles = [
        d for d in docs if d["kind"] == "Role" and not d["metadata"]["name"].endswith("-leader-election")
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    cluster_wide = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert sorted(d["kind"] for d in cluster_wide) == ["ClusterRole", "ClusterRoleBinding"]
    assert all(d["metadata"]["name"].endswith("-namespaces") for d in cluster_wide)
    getter = one(docs, "ClusterRole")
    assert getter["rules"][0]["resourceNames"] == ["a", "b"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WATCH_NAMESPACE"]["value"] == "a,b"


def test_app_version_is_the_crate_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == workspace["workspace"]["package"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
