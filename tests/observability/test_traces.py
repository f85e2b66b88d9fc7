"""Traces in a real Jaeger (v2, built from its published Go module by
testbed/build-go-tool.sh testbed/jaeger): a write through a node that is no
replica of the key forms one trace over three nodes, a child of the span
the client names in its `traceparent` header."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, Cluster, free_port, http, make_cluster, stop_process, wait_until

HERE = Path(__file__).resolve().parent
EXPORT_TIMEOUT = 30.0


def jaeger_binary() -> Path:
    """Jaeger, built once per machine (or $DYNAMO_JAEGER_BIN)."""
    given = os.environ.get("DYNAMO_JAEGER_BIN")
    if given:
        return Path(given)
    build = subprocess.run(
        [str(REPO / "testbed" / "build-go-tool.sh"), str(REPO / "testbed" / "jaeger")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(build.stdout.strip()) / "jaeger"


@dataclass
class Jaeger:
    """A running Jaeger: where it takes OTLP/HTTP and answers queries."""

    otlp: str
    query: str

    def trace(self, trace_id: str) -> dict | None:  # type: ignore[type-arg]
        """The trace as the query API (`/api/traces/ID`) gives it, if stored."""
        status, body = http("GET", f"{self.query}/api/traces/{trace_id}")
        if status != 200:
            return None
        data = json.loads(body).get("data") or []
        return data[0] if data else None


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    names = ("JAEGER_OTLP_PORT", "JAEGER_QUERY_PORT", "JAEGER_QUERY_GRPC_PORT")
    ports = {name: free_port() for name in names}
    log = (tmp_path / "jaeger.log").open("ab")
    process = subprocess.Popen(
        [str(jaeger_binary()), "--config", str(HERE / "jaeger.yaml")],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **{name: str(port) for name, port in ports.items()}},
    )
    running = Jaeger(
        otlp=f"http://127.0.0.1:{ports['JAEGER_OTLP_PORT']}",
        query=f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}",
    )
    try:
        wait_until("jaeger's query API", lambda: answers(f"{running.query}/api/services"), 60.0)
        # The receiver answers 405 to a GET once it listens.
        wait_until("jaeger's OTLP receiver", lambda: answers(f"{running.otlp}/v1/traces"), 60.0)
        yield running
    finally:
        # Jaeger's graceful shutdown can take 10 s; nothing of it is needed.
        stop_process(process, 3.0)


def answers(url: str) -> bool:
    try:
        return http("GET", url, timeout=2.0)[0] < 500
    except OSError:
        return False


def put_traced(node_url: str, key: str, value: bytes, traceparent: str, w: int) -> int:
    request = urllib.request.Request(
        f"{node_url}/v1/kv/{key}?w={w}", data=value, method="PUT", headers={"traceparent": traceparent}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def non_replica(cluster: Cluster) -> int:
    """The index of the node that owns no replica of the only partition."""
    _, body = http("GET", f"{cluster.nodes[0].admin_url}/v1/admin/ring")
    ring = json.loads(body)["ring"]
    assert ring["partitions"] == 1, ring
    owners = {ring["members"][i]["id"] for i in ring["owners"][0]}
    (index,) = [i for i, node in enumerate(cluster.nodes) if node.id not in owners]
    return index


def spans_by_node(trace: dict) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """The trace's spans grouped by the node (service.instance.id) that sent them."""
    nodes = {}
    for process_id, process in trace["processes"].items():
        tags = {tag["key"]: tag["value"] for tag in process["tags"]}
        assert process["serviceName"] == "dynamo-node", process
        nodes[process_id] = tags["service.instance.id"]
    grouped: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for span in trace["spans"]:
        grouped.setdefault(nodes[span["processID"]], []).append(span)
    return grouped


def parent_of(span: dict) -> str | None:  # type: ignore[type-arg]
    parents = [ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"]
    assert len(parents) <= 1, span
    return parents[0] if parents else None


def test_a_write_through_a_non_replica_is_one_trace_over_three_nodes(tmp_path: Path, jaeger: Jaeger) -> None:
    # One partition, two replicas of it: the third node is no replica of
    # any key, and forwards writes to one that coordinates them.
    cluster = make_cluster(
        tmp_path,
        extra_args=["--n=2", "--partitions=1", f"--otlp-endpoint={jaeger.otlp}"],
        extra_env={"OTEL_BSP_SCHEDULE_DELAY": "200"},
    )
    try:
        cluster.start()
        entry = non_replica(cluster)
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        status = put_traced(cluster.nodes[entry].url, "traced", b"v", f"00-{trace_id}-{client_span}-01", w=2)
        assert status == 204

        def whole_trace():  # type: ignore[no-untyped-def]
            trace = jaeger.trace(trace_id)
            return trace if trace and len(spans_by_node(trace)) == 3 and len(trace["spans"]) >= 5 else None

        trace = wait_until("a trace with spans from three nodes", whole_trace, EXPORT_TIMEOUT, 0.5)
    finally:
        cluster.stop()

    by_node = spans_by_node(trace)
    assert set(by_node) == {"n1", "n2", "n3"}, by_node.keys()
    spans = {span["spanID"]: span for span in trace["spans"]}
    node_of = {span["spanID"]: node for node, node_spans in by_node.items() for span in node_spans}
    assert all(span["traceID"] == trace_id for span in spans.values())
    # The entry node's request span is the child of the client's span; every
    # other span is the child of a span of this trace.
    roots = [span for span in spans.values() if parent_of(span) not in spans]
    assert len(roots) == 1, roots
    (root,) = roots
    assert parent_of(root) == client_span
    assert node_of[root["spanID"]] == cluster.nodes[entry].id
    assert root["operationName"] == "PUT /v1/kv/{key}"
    tags = {tag["key"]: tag["value"] for tag in root["tags"]}
    assert tags["http.response.status_code"] == 204, tags
    # The two replicas handle what they were sent in spans whose parents are
    # the calls of another node: entry -> coordinator -> other replica.
    crossings = sorted(
        (node_of[parent_of(span)], node_of[span["spanID"]], span["operationName"])
        for span in spans.values()
        if span is not root and node_of[parent_of(span)] != node_of[span["spanID"]]
    )
    replicas = [node.id for i, node in enumerate(cluster.nodes) if i != entry]
    coordinator = next(c for (f, c, op) in crossings if f == cluster.nodes[entry].id)
    (other,) = [r for r in replicas if r != coordinator]
    assert crossings == sorted(
        [
            (cluster.nodes[entry].id, coordinator, "coordinate write"),
            (coordinator, other, "replica write"),
        ]
    ), crossings


def test_without_an_endpoint_nothing_is_exported_and_nothing_complains(cluster: Cluster) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    status = put_traced(cluster.nodes[0].url, "untraced", b"v", f"00-{trace_id}-{client_span}-01", w=3)
    assert status == 204
    assert cluster.get("untraced", node=1) == (200, b"v")
    cluster.stop()
    for node in cluster.nodes:
        log = node.log_path.read_text()
        assert " ERROR " not in log, log
        assert "opentelemetry" not in log.lower(), log
