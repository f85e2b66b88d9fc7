"""A real Prometheus server (testbed/prometheus, built from its published Go
module) scrapes the three nodes' /metrics on their internal ports every
second; PromQL queries against it must see the traffic the test sent."""

from __future__ import annotations

import json
import math
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO, Cluster, free_port, http, stop_process, wait_until

# The first build on a machine compiles Prometheus (minutes); later runs
# find it in the testbed cache at once.
BUILD_TIMEOUT = 3600.0
SCRAPE_TIMEOUT = 30.0
DASHBOARD = REPO / "helm" / "dynamo-operator" / "dashboards" / "dynamo.json"
NODE_METRIC = re.compile(r"\bdynamo_(?!operator_)[a-z0-9_]+")


def prometheus_binary() -> Path:
    """testbed/prometheus built (or found in the cache) by build-go-tool.sh."""
    built = subprocess.run(
        [str(REPO / "testbed" / "build-go-tool.sh"), str(REPO / "testbed" / "prometheus")],
        check=True,
        stdout=subprocess.PIPE,
        timeout=BUILD_TIMEOUT,
    )
    return Path(built.stdout.decode().strip()) / "prometheus"


class Prometheus:
    """A Prometheus server on loopback and its query API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict]:  # type: ignore[type-arg]
        """The result vector of an instant query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http("GET", url)
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", (promql, status, answer)
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def scalar(self, promql: str) -> float | None:
        """The single value of `promql`, or None when it has no result."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, (promql, result)
        return float(result[0]["value"][1])

    def values(self, promql: str) -> dict[str, float]:
        """The values of `promql` by instance."""
        return {r["metric"].get("instance", ""): float(r["value"][1]) for r in self.query(promql)}


@pytest.fixture
def prometheus(cluster: Cluster, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus scraping the cluster's internal ports every second."""
    binary = prometheus_binary()
    targets = ", ".join(f'"{node.internal}"' for node in cluster.nodes)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: dynamo\n"
        f"    static_configs: [{{targets: [{targets}]}}]\n"
    )
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("ab")
    process = subprocess.Popen(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={address}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        server = Prometheus(f"http://{address}")

        def ready() -> bool:
            try:
                return http("GET", f"{server.url}/-/ready", timeout=2.0)[0] == 200
            except OSError:
                return False

        wait_until("prometheus ready", ready, 60.0)
        yield server
    finally:
        stop_process(process, 20.0)
        log.close()


def drive_traffic(cluster: Cluster) -> tuple[int, int]:
    """Puts (spread over the nodes), reads, a read of a missing key and two
    concurrent blind writes of one key that become siblings, read last;
    returns the number of puts and of reads that found the key."""
    puts = 0
    for i in range(30):
        assert cluster.put(f"key-{i}", b"value-%d" % i, node=i % 3) == 204
        puts += 1
    found = 0
    for i in range(60):
        assert cluster.get(f"key-{i % 30}", node=i % 3)[0] == 200
        found += 1
    assert cluster.get("no-such-key", node=1)[0] == 404
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = list(pool.map(lambda n: cluster.put("cart", b"item-%d" % n, node=n), [0, 2]))
    assert statuses == [204, 204], statuses
    puts += 2
    status, _ = cluster.get("cart", node=1)
    assert status == 300, status
    return puts, found + 1


def test_prometheus_sees_requests_latency_divergence_members_and_storage(
    cluster: Cluster, prometheus: Prometheus
) -> None:
    def all_up() -> bool:
        return prometheus.values('up{job="dynamo"}') == {node.internal: 1.0 for node in cluster.nodes}

    wait_until("three targets up", all_up, SCRAPE_TIMEOUT)
    puts, found = drive_traffic(cluster)
    sent = puts + found + 1  # and the read of a missing key

    def scraped() -> bool:
        return prometheus.scalar("sum(dynamo_requests_total)") == sent

    wait_until(f"all {sent} requests scraped", scraped, SCRAPE_TIMEOUT)
    assert prometheus.scalar('sum(dynamo_requests_total{op="put"})') == puts
    assert prometheus.scalar('sum(dynamo_requests_total{op="get",outcome="not_found"})') == 1
    assert prometheus.scalar('sum(dynamo_requests_total{outcome="quorum_failed"})') == 0

    p99 = prometheus.scalar(
        'histogram_quantile(0.99, sum by (le) (rate(dynamo_request_duration_seconds_bucket{op="get"}[1m])))'
    )
    assert p99 is not None and math.isfinite(p99) and p99 > 0, p99

    share = prometheus.scalar(
        'sum(dynamo_read_versions_total{versions="2"}) / sum(dynamo_read_versions_total)'
    )
    assert share is not None and share > 0, share
    assert prometheus.scalar("sum(dynamo_read_versions_total)") == found

    members = prometheus.values('dynamo_members{state="alive"}')
    assert members == {node.internal: 3.0 for node in cluster.nodes}, members
    memtables = prometheus.values("dynamo_rocksdb_memtable_bytes")
    assert len(memtables) == 3 and all(v > 0 for v in memtables.values()), memtables
    assert prometheus.scalar("sum(dynamo_rocksdb_write_stopped)") == 0


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the chart's Grafana dashboard, with its
    variables filled in (any namespace, cluster and pod; a 1 m rate window)."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    panels += [inner for panel in panels for inner in panel.get("panels", [])]
    queries = []
    for panel in panels:
        for target in panel.get("targets", []):
            expr = re.sub(r"\$__rate_interval|\$__interval|\$__range", "1m", target["expr"])
            queries.append(re.sub(r"\$\w+", ".*", expr))
    return queries


def test_the_dashboard_queries_run_and_name_series_the_nodes_serve(
    cluster: Cluster, prometheus: Prometheus
) -> None:
    """The chart's dashboard against the real nodes: each query is valid
    PromQL for Prometheus, and each node metric it names has series."""
    wait_until("three targets up", lambda: len(prometheus.values('up{job="dynamo"}')) == 3, SCRAPE_TIMEOUT)
    drive_traffic(cluster)
    queries = dashboard_queries()
    names = sorted({name for query in queries for name in NODE_METRIC.findall(query)})
    assert len(names) > 10, names

    def all_present() -> list[str]:
        missing = [n for n in names if not prometheus.query(f'count({{__name__="{n}"}})')]
        return [] if missing else names

    try:
        wait_until("every dashboard metric scraped", all_present, SCRAPE_TIMEOUT)
    except TimeoutError:
        missing = [n for n in names if not prometheus.query(f'count({{__name__="{n}"}})')]
        raise AssertionError(f"the dashboard names metrics no node serves: {missing}") from None
    for query in queries:
        prometheus.query(query)
