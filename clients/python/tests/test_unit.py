"""What a live cluster cannot show on demand, against scripted answers (httpx.MockTransport):
which failures are retried, Retry-After, 507 failover, error bodies, malformed answers."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from dynamo_client import Client, ConnectionFailed, DynamoError, Retry, Unavailable

Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*steps: httpx.Response | Exception) -> tuple[list[httpx.Request], Handler]:
    """A handler answering with `steps` in turn (an exception is raised), and the requests."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = steps[len(seen) - 1]
        if isinstance(step, Exception):
            raise step
        return step

    return seen, handle


def client(handler: Handler, urls: list[str] | None = None, attempts: int = 5) -> Client:
    return Client(
        urls or ["http://n1"],
        transport=httpx.MockTransport(handler),
        retry=Retry(attempts=attempts, base=0.001, cap=0.002),
    )


def unavailable(status: int = 503, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": "quorum_unavailable", "message": "only 1 answered"}}
    return httpx.Response(status, json=body, headers=headers)


WRITTEN = httpx.Response(204, headers={"X-Dynamo-Context": "ctx2"})


def test_backoff_is_full_jitter_within_the_cap() -> None:
    retry = Retry(attempts=5, base=0.1, cap=0.3)
    for n, bound in [(0, 0.1), (1, 0.2), (2, 0.3), (9, 0.3), (1000, 0.3)]:
        assert all(0 <= retry.backoff(n) <= bound for _ in range(200))
    with pytest.raises(ValueError):
        Retry(attempts=0)


def test_blind_write_is_not_resent_after_a_possibly_delivered_request() -> None:
    seen, handler = scripted(httpx.ReadError("reset"), WRITTEN)
    with client(handler) as kv, pytest.raises(ConnectionFailed):
        kv.put("k", b"v")
    assert len(seen) == 1


def test_write_with_context_is_resent_after_a_transport_error() -> None:
    seen, handler = scripted(httpx.ReadError("reset"), WRITTEN)
    with client(handler) as kv:
        assert kv.put("k", b"v", context="ctx1") == "ctx2"
    assert [r.headers["X-Dynamo-Context"] for r in seen] == ["ctx1", "ctx1"]


def test_refused_connection_fails_over_even_for_a_blind_write() -> None:
    seen, handler = scripted(httpx.ConnectError("refused"), WRITTEN)
    with client(handler, ["http://n1", "http://n2"]) as kv:
        assert kv.put("k", b"v") == "ctx2"
    assert [r.url.host for r in seen] == ["n1", "n2"]


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    seen, handler = scripted(unavailable(headers={"Retry-After": "1"}), WRITTEN)
    kv = Client("http://n1", transport=httpx.MockTransport(handler), retry=Retry(base=0.0, cap=0.3))
    began = time.monotonic()
    with kv:
        kv.put("k", b"v")
    assert 0.3 <= time.monotonic() - began < 1.0
    assert len(seen) == 2


def test_507_moves_to_the_next_node_and_gives_unavailable_at_the_end() -> None:
    seen, handler = scripted(unavailable(507), unavailable(507), unavailable(507))
    with client(handler, ["http://n1", "http://n2"], attempts=3) as kv, pytest.raises(Unavailable) as raised:
        kv.put("k", b"v")
    assert raised.value.status == 507
    assert [r.url.host for r in seen] == ["n1", "n2", "n1"]


def test_errors_without_a_json_body() -> None:
    _, handler = scripted(httpx.Response(431))
    with client(handler) as kv, pytest.raises(DynamoError) as raised:
        kv.get("k")
    assert (raised.value.status, raised.value.code) == (431, "http_431")
    assert raised.value.message == "Request Header Fields Too Large"


def test_malformed_answers_are_protocol_errors() -> None:
    _, handler = scripted(
        httpx.Response(200, json={"context": "c", "values": ["not base64!"]}),
        httpx.Response(200, json={"items": []}),
        httpx.Response(200, json={"keys": "k", "cursor": None}),
    )
    with client(handler) as kv:
        for call in (lambda: kv.get("k"), lambda: kv.get_many(["k"]), lambda: list(kv.list_keys())):
            with pytest.raises(DynamoError) as raised:
                call()
            assert raised.value.code == "protocol_error"


def test_requests_carry_accept_token_and_encoded_keys() -> None:
    seen, handler = scripted(httpx.Response(404, json={"error": {"code": "not_found", "message": "x"}}))
    kv = Client("http://n1/", token="t0k", transport=httpx.MockTransport(handler))
    with kv:
        assert kv.get("a b/../ü", r=1).values == []
    assert seen[0].headers["Accept"] == "application/json"
    assert seen[0].headers["Authorization"] == "Bearer t0k"
    assert seen[0].url.raw_path == b"/v1/kv/a%20b%2F%2E%2E%2F%C3%BC?r=1"
