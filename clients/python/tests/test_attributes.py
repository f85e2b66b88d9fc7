"""A version's attributes against a live three-node cluster: content type, metadata and TTL
written with put/update and read back through get and get_many, per sibling, by both
clients; a TTL that passes; what the client refuses before sending anything."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Cluster, Recorder, fast_retry, wait_until
from dynamo_client import AsyncClient, InvalidRequest, Version, Versions

DOC = b'{"a":1}'


def expiry_between(version: Version, before: datetime, after: datetime, ttl: float) -> bool:
    """Whether ``version`` expires ``ttl`` s after a moment between ``before`` and ``after``
    (give or take a second of rounding to whole seconds and milliseconds)."""
    assert version.expires_at is not None
    assert version.expires_at.tzinfo is not None and version.expires_at.utcoffset() == timedelta(0)
    slack = timedelta(seconds=1)
    return (
        before + timedelta(seconds=ttl) - slack
        <= version.expires_at
        <= after + timedelta(seconds=ttl) + slack
    )


def test_content_type_and_meta_round_trip_through_get_and_get_many(cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks) as kv:
        before = datetime.now(UTC)
        kv.put(key, DOC, content_type="application/json", meta={"Owner": "ops", "trace-id": "a1"}, ttl=3600)
        after = datetime.now(UTC)
        kv.put(f"{key}/plain", b"plain")

        read = kv.get(key)
        version = read.version
        assert version is not None
        assert (version.value, version.content_type) == (DOC, "application/json")
        assert version.meta == {"owner": "ops", "trace-id": "a1"}  # names come back in lower case
        assert expiry_between(version, before, after, 3600)
        assert read.values == [DOC] and read.siblings == (version,)

        plain = kv.get(f"{key}/plain")
        assert plain.siblings == (Version(b"plain", None, {}, None),)
        assert plain == Versions(f"{key}/plain", plain.context, [b"plain"])

        many = kv.get_many([key, f"{key}/plain", f"{key}/absent"])
        assert many[key].siblings == (version,)
        assert many[f"{key}/plain"].siblings == plain.siblings
        assert many[f"{key}/absent"].siblings == ()

        # A value written without attributes goes without a Content-Type (none is kept).
        puts = [r for r in recorder.requests if r.method == "PUT"]
        assert puts[0].headers["content-type"] == "application/json"
        assert puts[0].headers["x-dynamo-meta-owner"] == "ops"
        assert puts[0].headers["x-dynamo-ttl"] == "3600"
        assert "content-type" not in puts[1].headers
        assert not any(name.startswith("x-dynamo-") for name in puts[1].headers)

        # The attributes belong to the version: a write with the read's context replaces it,
        # with only what it gives.
        kv.put(key, b"text", context=read.context, content_type="text/plain; charset=utf-8")
        assert kv.get(key, r=3).siblings == (Version(b"text", "text/plain; charset=utf-8"),)
        kv.put(key, b"bare", context=kv.get(key).context)
        assert kv.get(key, r=3).siblings == (Version(b"bare"),)


def test_siblings_keep_their_own_attributes(cluster: Cluster, key: str) -> None:
    with cluster.client(0) as first, cluster.client(1) as second:
        first.put(key, b"one", content_type="text/plain", meta={"writer": "first"})
        second.put(
            key, b"two", content_type="application/x-two", meta={"writer": "second", "n": "2"}, ttl=600
        )

        for read in (first.get(key, r=3), second.get_many([key], r=3)[key]):
            assert sorted(read.values) == [b"one", b"two"]
            assert [s.value for s in read.siblings] == read.values  # the same order
            one, two = sorted(read.siblings, key=lambda s: s.value)
            assert one == Version(b"one", "text/plain", {"writer": "first"}, None)
            assert (two.content_type, two.meta) == ("application/x-two", {"writer": "second", "n": "2"})
            assert two.expires_at is not None and two.expires_at > datetime.now(UTC) + timedelta(seconds=500)

        # update() merges them and writes one version with the attributes it is given.
        context = first.update(key, lambda values: b"+".join(sorted(values)), content_type="text/plain", w=3)
        assert second.get(key, r=3) == Versions(key, context, siblings=(Version(b"one+two", "text/plain"),))


def test_a_ttl_that_passed_reads_as_deleted(cluster: Cluster, key: str) -> None:
    alone, shared = f"{key}/alone", f"{key}/shared"
    with cluster.client() as kv:
        kv.put(alone, b"short-lived", ttl=1, w=3)
        kv.put(shared, b"stays", w=3)
        kv.put(shared, b"goes", ttl=timedelta(milliseconds=200), w=3)  # a sibling, rounded up to 1 s
        assert kv.get(alone, r=3).values == [b"short-lived"]
        assert sorted(kv.get(shared, r=3).values) == [b"goes", b"stays"]

        def expired() -> bool:
            return kv.get(alone, r=3).values == [] and kv.get(shared, r=3).values == [b"stays"]

        wait_until("the versions with a 1 s TTL read as deleted", expired, timeout=15.0, interval=0.2)
        gone = kv.get(alone)
        assert not gone.exists and gone.siblings == () and gone.context is not None
        # The sibling without a TTL stays, alone.
        assert kv.get(shared).siblings == (Version(b"stays"),)
        many = kv.get_many([alone, shared])
        assert many[alone].values == [] and many[alone].context is not None
        assert many[shared].values == [b"stays"]
        assert sorted(kv.list_keys(f"{key}/", r=3)) == [shared]
        # The 404 carries the context, so a new write supersedes the expired version.
        kv.put(alone, b"back", context=gone.context)
        assert kv.get(alone, r=3).siblings == (Version(b"back"),)


def bad_attribute_calls() -> list[tuple[str, dict[str, Any]]]:
    """Attributes the client refuses before sending, with the text its ValueError names."""
    return [
        ("positive", {"ttl": 0}),
        ("positive", {"ttl": -5}),
        ("positive", {"ttl": timedelta(seconds=-1)}),
        ("finite", {"ttl": float("nan")}),
        ("ten years", {"ttl": timedelta(days=3651)}),
        ("HTTP token", {"meta": {"has space": "x"}}),
        ("HTTP token", {"meta": {"colon:": "x"}}),
        ("HTTP token", {"meta": {"": "x"}}),
        ("HTTP token", {"meta": {"naïve": "x"}}),
        ("twice", {"meta": {"Owner": "a", "owner": "b"}}),
        ("visible ASCII", {"meta": {"ok": "line\r\nX-Injected: 1"}}),
        ("visible ASCII", {"meta": {"ok": "café"}}),
        ("visible ASCII", {"content_type": ""}),
        ("visible ASCII", {"content_type": "text/plain\n"}),
    ]


def test_bad_attributes_raise_value_error_without_a_request(cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks) as kv:
        for text, attributes in bad_attribute_calls():
            calls: list[Callable[[], object]] = [
                lambda attributes=attributes: kv.put(key, b"x", **attributes),
                lambda attributes=attributes: kv.update(key, lambda values: b"x", **attributes),
            ]
            for call in calls:
                with pytest.raises(ValueError, match=text):
                    call()
        with pytest.raises(TypeError):
            kv.put(key, b"x", ttl="10")  # type: ignore[arg-type]
        assert recorder.requests == []


def test_limits_the_node_checks_are_invalid_requests(cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks, retry=fast_retry(5)) as kv:
        with pytest.raises(InvalidRequest) as raised:
            kv.put(key, b"x", meta={f"m{i}": "v" for i in range(33)})
        assert (raised.value.status, raised.value.code) == (400, "invalid_header")
        with pytest.raises(InvalidRequest) as raised:
            kv.put(key, b"x", content_type="x/" + "y" * 300)
        assert (raised.value.status, raised.value.code) == (400, "invalid_header")
        assert recorder.statuses == [400, 400]  # not retried
        assert kv.get(key).values == []


def test_async_client_attributes(cluster: Cluster, key: str) -> None:
    async def main() -> None:
        recorder = Recorder()
        async with AsyncClient(cluster.urls, event_hooks=recorder.async_hooks) as kv:
            await kv.put(key, DOC, content_type="application/json", meta={"Kind": "doc"})
            await kv.put(key, b"brief", meta={"kind": "note"}, ttl=1.0)  # a sibling
            read = await kv.get(key, r=3)
            brief, doc = sorted(read.siblings, key=lambda s: s.value)
            assert doc == Version(DOC, "application/json", {"kind": "doc"}, None)
            assert (brief.value, brief.content_type, brief.meta) == (b"brief", None, {"kind": "note"})
            assert brief.expires_at is not None
            assert (await kv.get_many([key], r=3))[key].siblings == read.siblings

            async def expired() -> None:
                deadline = asyncio.get_running_loop().time() + 15.0
                while (await kv.get(key, r=3)).values != [DOC]:
                    assert asyncio.get_running_loop().time() < deadline, "the 1 s TTL did not pass"
                    await asyncio.sleep(0.2)

            await expired()
            context = await kv.update(
                key, lambda values: values[0] + b" ", content_type="application/json", ttl=60
            )
            final = (await kv.get(key, r=3)).version
            assert final is not None and final.value == DOC + b" " and context
            assert final.content_type == "application/json" and final.meta == {}
            assert final.expires_at is not None

            sent = len(recorder.requests)
            with pytest.raises(ValueError, match="positive"):
                await kv.put(key, b"x", ttl=0)
            with pytest.raises(ValueError, match="HTTP token"):
                await kv.update(key, lambda values: b"x", meta={"a b": "c"})
            assert len(recorder.requests) == sent

    asyncio.run(main())
