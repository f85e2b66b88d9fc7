"""Retries and failover against a live cluster whose nodes the tests stop and restart
(each test leaves all three nodes running)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import Cluster, Recorder, fast_retry, free_port
from dynamo_client import Client, ConnectionFailed, Retry, Unavailable


@pytest.fixture
def restore(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, with every stopped node started again after the test."""
    yield cluster
    stopped = [i for i, n in enumerate(cluster.nodes) if n.process is None or n.process.poll() is not None]
    if stopped:
        cluster.start(*stopped)


def test_failover_to_the_next_url_when_a_node_is_down(restore: Cluster, key: str) -> None:
    cluster = restore
    cluster.stop(2)  # n3 down; n1 and n2 still make a write quorum
    recorder = Recorder()
    with cluster.client([2, 0], event_hooks=recorder.hooks, retry=fast_retry(3)) as kv:
        kv.put(key, b"v")
        n3, n1 = cluster.nodes[2].client, cluster.nodes[0].client
        assert recorder.hosts() == [n3, n1]  # refused by n3, then at once n1
        assert recorder.statuses == [204]
        # The client stays with the node that answered.
        assert kv.get(key).values == [b"v"]
        assert recorder.hosts() == [n3, n1, n1]


def test_all_urls_down_raises_connection_failed(key: str) -> None:
    recorder = Recorder()
    dead = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    kv = Client(dead, event_hooks=recorder.hooks, retry=fast_retry(4))
    with kv, pytest.raises(ConnectionFailed) as raised:
        kv.get(key)
    assert isinstance(raised.value, Unavailable)
    assert raised.value.status is None and raised.value.code == "connection_failed"
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert len(recorder.requests) == 4  # the configured attempts, alternating URLs
    assert recorder.hosts()[:2] == [u.removeprefix("http://") for u in dead]


def test_503_is_retried_then_unavailable(restore: Cluster, key: str) -> None:
    cluster = restore
    with cluster.client() as kv:
        kv.put(key, b"before", w=3)
    cluster.stop(1, 2)  # n1 alone: w = 2 and r = 2 cannot be met
    recorder = Recorder()
    with cluster.client(0, event_hooks=recorder.hooks, retry=fast_retry(3)) as kv:
        with pytest.raises(Unavailable) as raised:
            kv.put(key, b"x")
        assert raised.value.status == 503
        assert raised.value.code == "quorum_unavailable"
        assert "write needed 2 of 3" in raised.value.message
        assert recorder.statuses == [503, 503, 503]  # exactly the configured attempts

        recorder.statuses.clear()
        with pytest.raises(Unavailable):
            kv.get(key)
        assert recorder.statuses == [503, 503, 503]
        # What n1 alone can do still works.
        assert kv.get(key, r=1).exists


def test_restart_during_backoff_lets_the_retry_succeed(restore: Cluster, key: str) -> None:
    cluster = restore
    cluster.stop(1, 2)
    recorder = Recorder()

    def restart_after_first_503(response: httpx.Response) -> None:
        # Runs between the first answer (503) and the client's wait before its retry:
        # the peers come back (ready, and reached by n1) while the client backs off.
        if recorder.statuses == [503]:
            cluster.start(1, 2)

    recorder.on_response = restart_after_first_503
    retry = Retry(attempts=3, base=0.05, cap=0.5)
    with cluster.client(0, event_hooks=recorder.hooks, retry=retry) as kv:
        context = kv.put(key, b"made it")
        assert recorder.statuses == [503, 204]
        # The 503 attempt left its version on n1 (a node does not roll back); the 503
        # carried the context to retry with, so the retry replaced that version: one
        # value, not one per attempt.
        assert recorder.requests[1].headers.get("x-dynamo-context")
        read = kv.get(key, r=3)
        assert read.values == [b"made it"]
        assert context
