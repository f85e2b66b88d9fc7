"""The chart's monitoring: the nodes' PodMonitor and the operator's
ServiceMonitor against the Prometheus Operator's published CRDs, and the
Grafana dashboard (its shape, and every PromQL expression naming only
metrics and labels the nodes and the operator export)."""

from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest

from conftest import CHART, NAMESPACE, REPO, VALUE_SETS, validate_custom

DASHBOARD = CHART / "dashboards" / "dynamo.json"
OPERATOR_METRICS_RS = REPO / "operator" / "src" / "metrics.rs"
RESOURCES = REPO / "operator" / "src" / "resources"

# The node's metrics (GET /metrics on both ports): name -> (type, labels).
NODE_METRICS = {
    "dynamo_requests_total": ("counter", {"op", "outcome"}),
    "dynamo_request_duration_seconds": ("histogram", {"op", "outcome"}),
    "dynamo_quorum_shortfalls_total": ("counter", {"op"}),
    "dynamo_sloppy_standins_total": ("counter", set()),
    "dynamo_hedged_reads_total": ("counter", set()),
    "dynamo_hints_stored_total": ("counter", set()),
    "dynamo_hints_delivered_total": ("counter", set()),
    "dynamo_hints_pending": ("gauge", set()),
    "dynamo_antientropy_exchanges_total": ("counter", {"outcome"}),
    "dynamo_repaired_keys_total": ("counter", {"source"}),
    "dynamo_repaired_bytes_total": ("counter", {"source"}),
    "dynamo_transfer_partitions": ("gauge", {"state"}),
    "dynamo_transfer_keys_total": ("counter", {"direction"}),
    "dynamo_members": ("gauge", {"state"}),
    "dynamo_rocksdb_live_data_bytes": ("gauge", set()),
    "dynamo_rocksdb_sst_files_bytes": ("gauge", set()),
    "dynamo_rocksdb_memtable_bytes": ("gauge", set()),
    "dynamo_rocksdb_pending_compaction_bytes": ("gauge", set()),
    "dynamo_rocksdb_running_compactions": ("gauge", set()),
    "dynamo_rocksdb_write_stopped": ("gauge", set()),
    "dynamo_read_versions_total": ("counter", {"versions"}),
    "dynamo_build_info": ("gauge", {"version"}),
}
# Labels Prometheus adds to the nodes' series: the Prometheus Operator's
# target labels and the PodMonitor's relabelings (cluster, zone).
NODE_TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "instance", "job", "cluster", "zone"}
# The operator's target labels (its series keep their own namespace and
# cluster: honorLabels).
OPERATOR_TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "instance", "job", "service"}

# PromQL functions and aggregations the dashboard may use.
FUNCTIONS = {
    "sum", "count", "max", "min", "avg", "topk", "bottomk", "quantile",
    "rate", "irate", "increase", "delta", "deriv", "histogram_quantile",
    "clamp_min", "clamp_max", "abs", "vector", "scalar", "time", "label_values",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATORS = {"and", "or", "unless", "bool", "offset"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}
PANEL_TYPES = {"row", "timeseries", "stat", "bargauge", "gauge", "table"}


def series_names(name: str, kind: str) -> dict[str, set[str]]:
    """The series a metric of `kind` exposes: name -> extra labels."""
    if kind == "histogram":
        return {f"{name}_bucket": {"le"}, f"{name}_sum": set(), f"{name}_count": set()}
    if kind == "counter" and not name.endswith("_total"):
        return {f"{name}_total": set()}
    return {name: set()}


def operator_metrics() -> dict[str, tuple[str, set[str]]]:
    """The operator's metrics as operator/src/metrics.rs registers them
    (prometheus-client: the registry's prefix, `_total` for counters):
    name -> (type, labels)."""
    source = OPERATOR_METRICS_RS.read_text()
    (prefix,) = re.findall(r'Registry::with_prefix\("(\w+)"\)', source)
    label_sets = {
        struct: set(re.findall(r"pub (\w+): String", body))
        for struct, body in re.findall(r"pub struct (\w+) \{(.*?)\}", source, re.S)
    }
    kinds = {}
    for var, struct, kind in re.findall(r"let (\w+) = Family::<(\w+), (\w+)>", source):
        kinds[var] = (kind.lower(), label_sets[struct])
    for var in re.findall(r"let (\w+) = Histogram::new", source):
        kinds[var] = ("histogram", set())
    found = {}
    for name, var in re.findall(r'registry\.register\(\s*"(\w+)",\s*"[^"]*",\s*(\w+)\.clone\(\)', source):
        kind, labels = kinds[var]
        full = f"{prefix}_{name}" + ("_total" if kind == "counter" else "")
        found[full] = (kind, labels)
    return found


def known_series() -> dict[str, set[str]]:
    """Every series name the dashboard may query -> the labels it may use."""
    series = {}
    for metrics, target in ((NODE_METRICS, NODE_TARGET_LABELS), (operator_metrics(), OPERATOR_TARGET_LABELS)):
        for name, (kind, labels) in metrics.items():
            for series_name, extra in series_names(name, kind).items():
                series[series_name] = labels | extra | target
    return series


TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<range>\[[^\]]*\])|(?P<var>\$\w+)'
    r"|(?P<number>\d+(?:\.\d+)?)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<op>=~|!~|!=|==|>=|<=|[-+*/^%<>=(){},]))"
)


def tokens(expr: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(expr.rstrip()):
        match = TOKEN.match(expr, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read {expr[position:]!r}")
        found.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    return found


def expr_problems(expr: str, series: dict[str, set[str]], variables: set[str]) -> list[str]:
    """What is wrong with a PromQL expression of the dashboard: unknown
    functions, metrics, labels (in matchers and groupings) and variables,
    unbalanced brackets."""
    try:
        toks = tokens(expr)
    except ValueError as error:
        return [str(error)]
    problems, metrics, grouping = [], [], set()
    for kind, text in toks:
        if kind in ("var", "string", "range"):
            named = re.findall(r"\$(\w+)", text)
            problems.extend(f"unknown variable ${v}" for v in named if v not in variables | GRAFANA_VARIABLES)
    depth, i = 0, 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "op" and text in "()":
            depth += 1 if text == "(" else -1
            if depth < 0:
                problems.append("unbalanced )")
        elif kind == "ident" and text in GROUPING:
            if following == "(":
                end = next((j for j in range(i + 2, len(toks)) if toks[j][1] == ")"), len(toks))
                grouping |= {t for k, t in toks[i + 2 : end] if k == "ident"}
                i = end
        elif kind == "ident" and (following == "(" or text in FUNCTIONS):
            if text not in FUNCTIONS:
                problems.append(f"unknown function {text}")
        elif kind == "ident" and text not in OPERATORS:
            metrics.append(text)
            if text not in series:
                problems.append(f"unknown metric {text}")
            if following == "{":
                end = next((j for j in range(i + 2, len(toks)) if toks[j][1] == "}"), len(toks))
                if end == len(toks):
                    problems.append(f"unclosed {{ after {text}")
                matchers = toks[i + 2 : end]
                for j, (k, t) in enumerate(matchers):
                    next_text = matchers[j + 1][1] if j + 1 < len(matchers) else None
                    if (
                        k == "ident"
                        and next_text in ("=", "!=", "=~", "!~")
                        and t not in series.get(text, set())
                    ):
                        problems.append(f"{text} has no label {t}")
                i = end
        i += 1
    if depth:
        problems.append("unbalanced (")
    allowed = set().union(*(series.get(m, set()) for m in metrics)) if metrics else set()
    problems.extend(f"grouping by {label}, which no metric of the query has" for label in grouping - allowed)
    return problems


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those in collapsed rows too."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_problems(dashboard: dict) -> list[str]:
    """What keeps `dashboard` from being a Grafana dashboard Grafana's
    sidecar can load and that shows this project's metrics."""
    problems = []
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(dashboard.get(key), kind):
            problems.append(f"{key} missing or not a {kind.__name__}")
    if not 0 < len(dashboard.get("uid", "")) <= 40:
        problems.append("uid must be 1 to 40 characters")
    if "__inputs" in dashboard or "${DS_" in json.dumps(dashboard):
        problems.append("an import-time input (${DS_...}): the sidecar does not resolve it")
    templating = dashboard.get("templating", {}).get("list", [])
    variables = {v["name"] for v in templating}
    datasource = [v for v in templating if v.get("type") == "datasource"]
    if [(v["name"], v.get("query")) for v in datasource] != [("datasource", "prometheus")]:
        problems.append("needs one data source variable `datasource` of type prometheus")
    series = known_series()
    for variable in templating:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = (
            re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query or "")
            if variable["type"] == "query"
            else None
        )
        if variable["type"] == "query" and not match:
            problems.append(f"variable {variable['name']}: not label_values(selector, label)")
        elif match:
            problems.extend(
                f"variable {variable['name']}: {p}" for p in expr_problems(match[1], series, variables)
            )
            metric = match[1].split("{")[0]
            if match[2] not in series.get(metric, set()):
                problems.append(f"variable {variable['name']}: {metric} has no label {match[2]}")
    ids = [p.get("id") for p in panels(dashboard)]
    if len(ids) != len(set(ids)) or not all(isinstance(i, int) for i in ids):
        problems.append(f"panel ids must be unique integers: {ids}")
    for panel in panels(dashboard):
        problems.extend(
            f"panel {panel.get('title')!r}: {p}" for p in panel_problems(panel, series, variables)
        )
    return problems


def panel_problems(panel: dict, series: dict[str, set[str]], variables: set[str]) -> list[str]:
    problems = []
    if panel.get("type") not in PANEL_TYPES:
        problems.append(f"type {panel.get('type')!r}")
    grid = panel.get("gridPos", {})
    if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
        problems.append(f"gridPos {grid} outside the 24 columns")
    if panel.get("type") == "row":
        return problems
    if panel.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
        problems.append(f"datasource {panel.get('datasource')}: not the templated one")
    targets = panel.get("targets") or []
    if not targets:
        problems.append("no targets")
    if len({t.get("refId") for t in targets}) != len(targets):
        problems.append("refIds not unique")
    for target in targets:
        expr = target.get("expr", "")
        problems.extend(f"{expr}: {p}" for p in expr_problems(expr, series, variables))
        by = re.findall(r"\bby \(([^)]*)\)", expr)
        grouped = {label.strip() for labels in by for label in labels.split(",") if label.strip()}
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            if label not in grouped:
                problems.append(f"legend {{{{{label}}}}} is not a label the query keeps ({sorted(grouped)})")
    return problems


def rendered_one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) <= 1, f"more than one {kind}"
    return found[0] if found else None


def node_pod_labels() -> tuple[dict[str, str], dict[str, str]]:
    """The labels selecting every node pod (ClusterRef::node_selector) and
    the label constants of operator/src/resources/mod.rs."""
    source = (RESOURCES / "mod.rs").read_text()
    body = re.search(r"pub fn node_selector\(&self\)[^{]*\{(.*?)\n    \}", source, re.S)[1]
    selector = dict(re.findall(r'\(\s*"([^"]+)"\.to_string\(\),\s*"([^"]+)"\.to_string\(\),?\s*\)', body))
    constants = dict(re.findall(r'pub const (\w+_LABEL): &str = "([^"]+)";', source))
    return selector, constants


def node_container_ports() -> set[str]:
    source = (RESOURCES / "statefulset.rs").read_text()
    return set(re.findall(r'container_port\("(\w+)", \w+\)', source))


def meta_label(label: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", label)


def test_the_source_parsers_find_what_the_operator_defines():
    """The checks below read the operator's source; they fail if it moves."""
    selector, constants = node_pod_labels()
    assert selector == {"app.kubernetes.io/name": "dynamo", "app.kubernetes.io/component": "node"}
    assert {"INSTANCE_LABEL", "ZONE_LABEL"} <= constants.keys()
    assert node_container_ports() == {"http", "internal"}
    metrics = operator_metrics()
    assert metrics["dynamo_operator_reconciles_total"] == ("counter", {"namespace", "cluster"})
    assert metrics["dynamo_operator_reconcile_duration_seconds"] == ("histogram", set())
    assert len(metrics) >= 4


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_pod_monitor_scrapes_every_node_pod(rendered, values_name):
    values = VALUE_SETS[values_name]
    settings = values.get("nodeMetrics", {}).get("podMonitor", {})
    monitor = rendered_one(rendered[values_name], "PodMonitor")
    assert (monitor is not None) == settings.get("enabled", False), "the PodMonitor must be opt-in"
    if monitor is None:
        return
    selector, constants = node_pod_labels()
    spec = monitor["spec"]
    assert spec["selector"] == {"matchLabels": selector}
    watched = values.get("watchNamespaces")
    assert spec["namespaceSelector"] == ({"matchNames": watched} if watched else {"any": True})
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] in node_container_ports()
    assert endpoint["port"] == settings.get("port", "http")
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == settings.get("interval", "30s")
    assert endpoint["scrapeTimeout"] == settings.get("scrapeTimeout", "10s")
    relabeled = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabeled == {
        "cluster": [meta_label(constants["INSTANCE_LABEL"])],
        "zone": [meta_label(constants["ZONE_LABEL"])],
    }
    assert settings.get("endpoint", {}).items() <= endpoint.items()
    assert settings.get("labels", {}).items() <= monitor["metadata"]["labels"].items()


def test_monitors_are_checked_against_the_prometheus_operator_crds(rendered, monitoring_crds):
    """The CRDs are the Prometheus Operator's own, and the check is strict: a
    misspelt field or a malformed duration fails."""
    for kind, crd in monitoring_crds.items():
        assert crd["spec"]["group"] == "monitoring.coreos.com", kind
        assert crd["metadata"]["annotations"]["operator.prometheus.io/version"] == "0.85.0"
    docs = rendered["monitoring"]
    pod_monitor = rendered_one(docs, "PodMonitor")
    service_monitor = rendered_one(docs, "ServiceMonitor")
    validate_custom(pod_monitor, monitoring_crds["PodMonitor"])
    validate_custom(service_monitor, monitoring_crds["ServiceMonitor"])
    mistakes = [
        (pod_monitor, lambda d: d["spec"]["podMetricsEndpoints"][0].update(targetPortt="http")),
        (pod_monitor, lambda d: d["spec"]["podMetricsEndpoints"][0].update(scrapeTimeout="10 seconds")),
        (pod_monitor, lambda d: d["spec"]["namespaceSelector"].update(any="yes")),
        (service_monitor, lambda d: d["spec"]["endpoints"][0].update(honorLabel=True)),
        (service_monitor, lambda d: d["spec"].pop("selector")),
    ]
    for doc, mistake in mistakes:
        wrong = copy.deepcopy(doc)
        mistake(wrong)
        with pytest.raises(jsonschema.ValidationError):
            validate_custom(wrong, monitoring_crds[doc["kind"]])
    with pytest.raises(AssertionError, match="PodMonitor is not ServiceMonitor"):
        validate_custom(pod_monitor, monitoring_crds["ServiceMonitor"])


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_dashboard_config_map_for_grafanas_sidecar(rendered, values_name):
    settings = VALUE_SETS[values_name].get("grafanaDashboard", {})
    config_maps = [d for d in rendered[values_name] if d["kind"] == "ConfigMap"]
    assert len(config_maps) == int(settings.get("enabled", False)), "the dashboard must be opt-in"
    for config_map in config_maps:
        metadata = config_map["metadata"]
        assert metadata["namespace"] == (settings.get("namespace") or NAMESPACE)
        assert metadata["labels"]["grafana_dashboard"] == "1"
        assert metadata.get("annotations", {}) == settings.get("annotations", {})
        assert json.loads(config_map["data"]["dynamo.json"]) == json.loads(DASHBOARD.read_text())


def test_dashboard_is_a_grafana_dashboard_of_existing_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard_problems(dashboard) == []
    queried = " ".join(t["expr"] for p in panels(dashboard) for t in p.get("targets", []))
    # Every node metric and every operator metric has a panel.
    for name in list(NODE_METRICS) + list(operator_metrics()):
        assert name in queried, f"no panel shows {name}"


def set_expr(expr: str):
    """A change of the dashboard: the query of its first panel (after the first row)."""
    return lambda dashboard: dashboard["panels"][1]["targets"][0].update(expr=expr)


@pytest.mark.parametrize(
    "change,problem",
    [
        (set_expr("sum(dynamo_requests)"), "unknown metric"),
        (set_expr('sum(dynamo_hints_pending{op="get"})'), "no label op"),
        (set_expr("sum by (op) (dynamo_hints_pending)"), "grouping by op"),
        (set_expr("summ(dynamo_hints_pending)"), "unknown function"),
        (set_expr("sum(dynamo_hints_pending{pod=~'x'}"), "unbalanced"),
        (set_expr("sum(dynamo_hints_pending) @ 5"), "cannot read"),
        (set_expr('sum(dynamo_hints_pending{pod=~"$node"})'), "variable"),
        (lambda d: d["panels"][1]["targets"][0].update(legendFormat="{{zone}}"), "legend"),
        (lambda d: d["panels"][1].update(targets=[]), "no targets"),
        (lambda d: d["panels"][2].update(id=d["panels"][1]["id"]), "panel ids"),
        (lambda d: d["panels"][1].update(datasource={"type": "prometheus", "uid": "prom-1"}), "datasource"),
        (lambda d: d["panels"][1]["gridPos"].update(x=22), "gridPos"),
        (lambda d: d["templating"]["list"].pop(0), "data source variable"),
        (lambda d: d.pop("uid"), "uid"),
    ],
)
def test_dashboard_check_finds_mistakes(change, problem):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"][1]["type"] == "stat" and dashboard["panels"][1]["gridPos"]["w"] <= 4
    change(dashboard)
    problems = dashboard_problems(dashboard)
    assert any(problem in p for p in problems), problems
