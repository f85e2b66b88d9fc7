"""The harness itself: the three nodes form one cluster that stores and
returns a value through any of them."""

from __future__ import annotations

from conftest import Cluster


def test_a_value_written_through_one_node_reads_back_through_another(cluster: Cluster) -> None:
    assert cluster.put("harness-check", b"v1") in (200, 201, 204)
    status, body = cluster.get("harness-check", node=2)
    assert (status, body) == (200, b"v1"), (status, body)
