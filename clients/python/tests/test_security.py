"""Bearer tokens (a cluster with --auth-dir) and TLS (a cluster with --tls-dir, its CA
made with openssl here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from conftest import Cluster, Recorder, make_auth_dir, make_cluster, make_tls_dir
from dynamo_client import Client, Forbidden, NotAuthorized, TLSError, Versions


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster whose nodes require tokens (admin, peer and client tokens)."""
    directory = tmp_path_factory.mktemp("auth")
    tokens = make_auth_dir(directory / "auth")
    started = make_cluster(directory, [f"--auth-dir={directory / 'auth'}"])
    started.tokens = tokens
    started.token = tokens["client"]  # for the cluster's own checks (Cluster.client)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster serving HTTPS only, with a certificate of a CA made for the test."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test CA")
    directory = tmp_path_factory.mktemp("tls")
    ca = make_tls_dir(directory / "tls")
    started = make_cluster(directory, [f"--tls-dir={directory / 'tls'}"], scheme="https", ca_file=str(ca))
    try:
        started.start()
        yield started
    finally:
        started.stop()


def test_without_token_not_authorized(auth_cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    kv = Client(auth_cluster.urls, event_hooks=recorder.hooks)
    with kv, pytest.raises(NotAuthorized) as raised:
        kv.get(key)
    assert (raised.value.status, raised.value.code) == (401, "unauthorized")
    assert recorder.statuses == [401]  # a 4xx is never retried


def test_wrong_token_not_authorized(auth_cluster: Cluster, key: str) -> None:
    with Client(auth_cluster.urls, token="0" * 64) as kv, pytest.raises(NotAuthorized):
        kv.put(key, b"x")


def test_admin_token_is_forbidden_on_keys(auth_cluster: Cluster, key: str) -> None:
    kv = Client(auth_cluster.urls, token=auth_cluster.tokens["admin"])
    with kv, pytest.raises(Forbidden) as raised:
        kv.get(key)
    assert (raised.value.status, raised.value.code) == (403, "forbidden")


def test_client_token_works(auth_cluster: Cluster, key: str) -> None:
    with Client(auth_cluster.urls, token=auth_cluster.tokens["client"]) as kv:
        context = kv.put(key, b"secret")
        assert kv.get(key, r=3) == Versions(key, context, [b"secret"])
        assert kv.update(key, lambda values: values[0] + b"!") is not None
        assert kv.get_many([key])[key].values == [b"secret!"]
        assert kv.delete(key) is not None


def test_tls_with_ca_file(tls_cluster: Cluster, key: str) -> None:
    assert all(url.startswith("https://") for url in tls_cluster.urls)
    with Client(tls_cluster.urls, ca_file=tls_cluster.ca_file) as kv:
        context = kv.put(key, b"over tls")
        assert kv.get(key, r=3) == Versions(key, context, [b"over tls"])


def test_tls_without_ca_file_fails_clearly(tls_cluster: Cluster, key: str) -> None:
    recorder = Recorder()
    with Client(tls_cluster.urls, event_hooks=recorder.hooks) as kv, pytest.raises(TLSError) as raised:
        kv.get(key)
    assert raised.value.status is None and raised.value.code == "tls_error"
    assert "CERTIFICATE_VERIFY_FAILED" in raised.value.message
    assert "ca_file" in raised.value.message
    assert len(recorder.requests) == 1  # not retried: another try cannot fix it
