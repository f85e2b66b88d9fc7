"""The client against a live three-node cluster: reads, writes, contexts, siblings,
update, key encoding, errors, batch reads and listing, and the async client."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest

from conftest import Cluster, Recorder, fast_retry
from dynamo_client import AsyncClient, Client, DynamoError, InvalidRequest, SiblingsError, Versions


def test_put_get_delete_round_trip(cluster: Cluster, key: str) -> None:
    with cluster.client() as kv:
        context = kv.put(key, b"hello")
        read = kv.get(key)
        assert read == Versions(key, context, [b"hello"])
        assert read.exists and read.value == b"hello"

        tombstone = kv.delete(key, context=read.context)
        assert tombstone is not None
        gone = kv.get(key)
        assert gone.values == [] and not gone.exists and gone.value is None
        # The 404 keeps the tombstone's context, so a re-creation supersedes the delete.
        assert gone.context == tombstone

        kv.put(key, b"again", context=gone.context)
        again = kv.get(key, r=3)
        assert again.values == [b"again"]
        # Deleting without a context: the node deletes what it reads; then nothing is left.
        assert kv.delete(key) is not None
        assert kv.delete(key) is None
        assert kv.get(key).values == []


def test_absent_key_reads_empty(cluster: Cluster, key: str) -> None:
    with cluster.client() as kv:
        assert kv.get(key) == Versions(key, None, [])


def test_a_wrong_base_url_is_an_error_not_an_absent_key(cluster: Cluster, key: str) -> None:
    with Client([cluster.nodes[0].url + "/v2"]) as kv:
        with pytest.raises(DynamoError) as raised:
            kv.get(key)
        assert (raised.value.status, raised.value.code) == (404, "no_such_route")
        with pytest.raises(DynamoError):
            kv.delete(key)


def test_write_with_context_supersedes(cluster: Cluster, key: str) -> None:
    with cluster.client(0) as first, cluster.client(1) as second:
        first.put(key, b"v1")
        read = second.get(key)
        second.put(key, b"v2", context=read.context)
        assert first.get(key, r=3).values == [b"v2"]


def test_write_without_context_makes_siblings(cluster: Cluster, key: str) -> None:
    with cluster.client(0) as first, cluster.client(1) as second:
        first.put(key, b"one")
        second.put(key, b"two")  # no context: supersedes nothing
        read = first.get(key, r=3)  # a 300 answer, not an error
        assert sorted(read.values) == [b"one", b"two"]
        assert read.exists
        with pytest.raises(SiblingsError) as raised:
            _ = read.value
        assert sorted(raised.value.values) == [b"one", b"two"]
        # Writing with the read's context resolves them.
        first.put(key, b"both", context=read.context)
        assert second.get(key, r=3).values == [b"both"]


def test_update_merges_siblings(cluster: Cluster, key: str) -> None:
    seen: list[list[bytes]] = []

    def add_z(values: list[bytes]) -> bytes:
        seen.append(values)
        merged = set().union(*(json.loads(v) for v in values))
        return json.dumps(sorted(merged | {"z"})).encode()

    with cluster.client(0) as first, cluster.client(1) as second:
        first.put(key, b'["x"]')
        second.put(key, b'["y"]')
        context = first.update(key, add_z)
        assert sorted(seen[0]) == [b'["x"]', b'["y"]']
        read = second.get(key, r=3)
        assert read.values == [b'["x", "y", "z"]']
        assert read.context == context


def test_update_of_absent_key_and_delete(cluster: Cluster, key: str) -> None:
    with cluster.client() as kv:
        # An absent key: fn sees [] and creates it.
        assert kv.update(key, lambda values: b"%d" % len(values)) is not None
        assert kv.get(key).values == [b"0"]
        # Returning None deletes it; on an absent key it writes nothing.
        assert kv.update(key, lambda values: None) is not None
        assert kv.get(key).values == []
        assert kv.update(key, lambda values: None) is None
        # After the delete fn sees [] again, and the write supersedes the tombstone.
        kv.update(key, lambda values: b"back" if values == [] else b"unexpected")
        assert kv.get(key, r=3).values == [b"back"]


KEYS = [
    "a/b",
    "with space",
    "café/ünïcödé",
    "日本語/キー",
    "a/../b",
    "./x",
    "..",
    ".",
    "a//b",
    "/lead",
    "trail/",
    "?#%&+=;,'\"",
    "~tilde_-.",
    "%2F",
]


@pytest.mark.parametrize("name", KEYS)
def test_key_encoding(cluster: Cluster, name: str) -> None:
    prefix = f"enc-{secrets.token_hex(4)}/"
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks) as kv:
        kv.put(prefix + name, name.encode(), w=3)
        assert kv.get(prefix + name).values == [name.encode()]
        # The path carried the key exactly: no other key of the prefix was written (a
        # dot segment resolved by the HTTP layer, or %2F decoded twice, would have). A
        # listing reads one owner per partition by default (r=1): w=3 makes sure it has
        # the write.
        assert list(kv.list_keys(prefix)) == [prefix + name]
    raw = recorder.requests[0].url.raw_path.decode().removesuffix("?w=3")
    assert raw.startswith("/v1/kv/enc-")
    assert all(c.isascii() and c not in " ?#" for c in raw)


def test_key_encoding_of_spaces_and_unicode_is_percent_encoding() -> None:
    from dynamo_client import encode_key

    assert encode_key("a b/café") == "a%20b%2Fcaf%C3%A9"
    assert encode_key("a/../b/./c") == "a%2F%2E%2E%2Fb%2F%2E%2Fc"
    assert encode_key("x.y/~z-_") == "x%2Ey%2F~z-_"
    assert encode_key("%2F?#") == "%252F%3F%23"


def test_invalid_w_is_refused_and_not_retried(cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks, retry=fast_retry(5)) as kv:
        with pytest.raises(InvalidRequest) as raised:
            kv.put(key, b"x", w=7)
        assert isinstance(raised.value, DynamoError)
        assert raised.value.status == 400
        assert raised.value.code == "invalid_parameter"
        assert "w" in raised.value.message
        assert len(recorder.requests) == 1

        with pytest.raises(InvalidRequest) as raised:
            kv.get(key, r=0)
        assert (raised.value.status, raised.value.code) == (400, "invalid_parameter")
        with pytest.raises(InvalidRequest) as raised:
            kv.put(key, b"x", context="not a context")
        assert (raised.value.status, raised.value.code) == (400, "invalid_context")
        with pytest.raises(InvalidRequest) as raised:
            kv.put("k" * 1025, b"x")
        assert (raised.value.status, raised.value.code) == (400, "invalid_key")
        assert len(recorder.requests) == 4
        assert recorder.statuses == [400, 400, 400, 400]


def test_get_many(cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks) as kv:
        kv.put(f"{key}/a", b"A")
        kv.put(f"{key}/b", b"B1")
        kv.put(f"{key}/b", b"B2")  # siblings
        tombstone = kv.delete(f"{key}/d", context=kv.put(f"{key}/d", b"D"))
        recorder.requests.clear()

        keys = [f"{key}/a", f"{key}/b", f"{key}/missing", f"{key}/d", f"{key}/a"]
        found = kv.get_many(keys)
        assert list(found) == [f"{key}/a", f"{key}/b", f"{key}/missing", f"{key}/d"]
        assert found[f"{key}/a"].values == [b"A"]
        assert found[f"{key}/a"].context == kv.get(f"{key}/a").context
        assert sorted(found[f"{key}/b"].values) == [b"B1", b"B2"]
        assert found[f"{key}/missing"] == Versions(f"{key}/missing", None, [])
        assert found[f"{key}/d"] == Versions(f"{key}/d", tombstone, [])
        assert [r.url.path for r in recorder.requests[:1]] == ["/v1/batch/get"]

        # More than a request holds (100 keys) goes in several requests.
        recorder.requests.clear()
        many = [f"{key}/many/{i}" for i in range(150)] + [f"{key}/a"]
        result = kv.get_many(many, r=1)
        assert list(result) == many
        assert result[f"{key}/a"].values == [b"A"]
        assert all(v.values == [] for k, v in result.items() if "/many/" in k)
        assert len(recorder.requests) == 2
        assert kv.get_many([]) == {}


def test_list_keys_follows_cursors(cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with cluster.client(event_hooks=recorder.hooks) as kv:
        expected = {f"{key}/k{i}" for i in range(7)} | {f"{key}/sub/dir key", f"{key}/é"}
        # w=3: the listing reads one owner per partition (r=1 by default), which must
        # have every write.
        for k in expected:
            kv.put(k, b"v", w=3)
        kv.delete(f"{key}/deleted", context=kv.put(f"{key}/deleted", b"v", w=3), w=3)
        kv.put(f"{key}-sibling-prefix", b"v", w=3)  # shares the prefix's text but not "key/"
        recorder.requests.clear()

        listed = list(kv.list_keys(f"{key}/", page_size=2))
        assert sorted(listed) == sorted(expected)  # each once, the deleted one not
        # A page holds at most 2 keys, so at least 5 pages were asked for, each after
        # the first with the cursor the previous one returned.
        assert len(recorder.requests) >= 5
        assert all("cursor=" in str(r.url) for r in recorder.requests[1:])
        assert list(kv.list_keys(f"{key}/nothing-here/")) == []


def test_async_client_round_trip(cluster: Cluster, key: str) -> None:
    async def main() -> None:
        recorder = Recorder()
        async with AsyncClient(cluster.urls, event_hooks=recorder.async_hooks) as kv:
            context = await kv.put(key, b"one")
            assert await kv.get(key) == Versions(key, context, [b"one"])
            await kv.put(key, b"two")  # a sibling
            assert sorted((await kv.get(key, r=3)).values) == [b"one", b"two"]
            await kv.update(key, lambda values: b"+".join(sorted(values)), w=3)
            assert (await kv.get(key, r=3)).values == [b"one+two"]
            many = await kv.get_many([key, f"{key}/absent"])
            assert many[key].values == [b"one+two"] and many[f"{key}/absent"].values == []
            assert [k async for k in kv.list_keys(key, page_size=1)] == [key]
            assert await kv.delete(key) is not None
            assert (await kv.get(key)).values == []
            with pytest.raises(InvalidRequest):
                await kv.get(key, r=9)
        assert len(recorder.requests) == len(recorder.statuses) >= 11

    asyncio.run(main())
