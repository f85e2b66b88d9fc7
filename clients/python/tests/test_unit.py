"""What a live cluster cannot show on demand, against scripted answers (httpx.MockTransport):
which failures are retried, Retry-After, 507 failover, error bodies, malformed answers, the
headers that carry a write's attributes and how every shape of read answer is decoded."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dynamo_client import (
    Client,
    ConnectionFailed,
    DynamoError,
    Retry,
    SiblingsError,
    Unavailable,
    Version,
    Versions,
)

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


# Attributes (content type, metadata, TTL).


def test_attributes_go_as_headers_and_nothing_without_them() -> None:
    seen, handler = scripted(WRITTEN, WRITTEN, WRITTEN)
    with client(handler) as kv:
        kv.put("k", b"v")
        kv.put("k", b"v", content_type="text/csv", meta={"Owner": "ops", "empty": ""}, ttl=0.2)
        kv.put("k", b"v", ttl=timedelta(seconds=90, microseconds=1))
    assert "content-type" not in seen[0].headers
    assert not any(name.startswith("x-dynamo-") for name in seen[0].headers)
    assert seen[1].headers["content-type"] == "text/csv"
    assert seen[1].headers["x-dynamo-meta-owner"] == "ops"
    assert seen[1].headers["x-dynamo-meta-empty"] == ""
    assert seen[1].headers["x-dynamo-ttl"] == "1"  # whole seconds, rounded up
    assert seen[2].headers["x-dynamo-ttl"] == "91"
    assert all(r.url.query == b"" for r in seen)


def test_attributes_unavailable_during_an_upgrade_is_retried() -> None:
    refused = {"error": {"code": "attributes_unavailable", "message": "n3 is behind"}}
    seen, handler = scripted(httpx.Response(503, json=refused), WRITTEN)
    with client(handler) as kv:
        assert kv.put("k", b"v", meta={"a": "b"}) == "ctx2"  # a blind write too: nothing was stored
    assert [r.headers["x-dynamo-meta-a"] for r in seen] == ["b", "b"]


def test_update_writes_the_attributes_it_is_given() -> None:
    read = httpx.Response(200, json={"context": "c1", "values": ["YQ=="]})
    seen, handler = scripted(read, WRITTEN)
    with client(handler) as kv:
        assert kv.update("k", lambda values: values[0] + b"b", meta={"v": "2"}, ttl=5) == "ctx2"
    assert seen[1].headers["x-dynamo-meta-v"] == "2" and seen[1].headers["x-dynamo-ttl"] == "5"
    assert seen[1].headers["x-dynamo-context"] == "c1" and seen[1].content == b"ab"


def test_siblings_are_decoded_with_their_attributes() -> None:
    body = {
        "context": "c",
        "values": ["eyJhIjoxfQ==", "aGk="],
        "siblings": [
            {"value": "eyJhIjoxfQ==", "content_type": "application/json", "meta": {"owner": "ops"}},
            {"value": "aGk=", "content_type": None, "meta": {}, "expires_at": 1764547200123},
        ],
    }
    batch = {"items": [{"key": "k", **body}, {"key": "x", "context": None, "values": [], "siblings": []}]}
    _, handler = scripted(httpx.Response(300, json=body), httpx.Response(200, json=batch))
    with client(handler) as kv:
        read = kv.get("k")
        many = kv.get_many(["k", "x"])
    expected = (
        Version(b'{"a":1}', "application/json", {"owner": "ops"}, None),
        Version(b"hi", None, {}, datetime(2025, 12, 1, 0, 0, 0, 123000, tzinfo=UTC)),
    )
    assert read == Versions("k", "c", siblings=expected)
    assert read.values == [b'{"a":1}', b"hi"]
    assert many == {"k": read, "x": Versions("x")}
    with pytest.raises(SiblingsError):
        _ = read.version


def test_an_answer_without_siblings_gives_versions_without_attributes() -> None:
    # A node from before attributes (during a rolling upgrade) sends no "siblings".
    _, handler = scripted(httpx.Response(200, json={"context": "c", "values": ["aGk="]}))
    with client(handler) as kv:
        assert kv.get("k").siblings == (Version(b"hi", None, {}, None),)


def test_a_single_value_answered_as_itself_has_its_attributes_in_headers() -> None:
    headers = {
        "Content-Type": "text/plain",
        "X-Dynamo-Meta-Owner": "ops",
        "X-Dynamo-Expires-At": "1000",
        "X-Dynamo-Context": "c",
    }
    _, handler = scripted(httpx.Response(200, content=b"hi", headers=headers))
    with client(handler) as kv:
        read = kv.get("k")
    one_second = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert read == Versions("k", "c", siblings=(Version(b"hi", "text/plain", {"owner": "ops"}, one_second),))


@pytest.mark.parametrize(
    "siblings",
    [
        "no list",
        [],  # shorter than values
        [{"value": "b3RoZXI="}],  # another value than values has there
        [{"value": "aGk=", "content_type": 7}],
        [{"value": "aGk=", "meta": {"a": 1}}],
        [{"value": "aGk=", "meta": ["a"]}],
        [{"value": "aGk=", "expires_at": "soon"}],
        [{"value": "aGk=", "expires_at": -1}],
        [{"value": "aGk=", "expires_at": True}],
        [{"value": "aGk=", "expires_at": 10**30}],
    ],
)
def test_malformed_siblings_are_protocol_errors(siblings: object) -> None:
    body = {"context": "c", "values": ["aGk="], "siblings": siblings}
    _, handler = scripted(httpx.Response(200, json=body))
    with client(handler) as kv, pytest.raises(DynamoError) as raised:
        kv.get("k")
    assert raised.value.code == "protocol_error"


def test_versions_derive_values_and_siblings_from_each_other() -> None:
    assert Versions("k", "c", [b"a"]).siblings == (Version(b"a"),)
    assert Versions("k", "c", siblings=[Version(b"a", "t")]).values == [b"a"]  # type: ignore[arg-type]
    assert Versions("k", "c", [b"a"], (Version(b"a", "t"),)).version == Version(b"a", "t")
    assert Versions("k").version is None and Versions("k").value is None
    with pytest.raises(ValueError):
        Versions("k", "c", [b"a"], (Version(b"b"),))
    # A Version is hashable (its meta aside), and keeps its own copy of the meta it is given.
    meta = {"a": "1"}
    version = Version(b"v", "t", meta)
    meta["a"] = "2"
    assert version.meta == {"a": "1"}
    assert len({version, Version(b"v", "t", {"a": "1"})}) == 1
