"""Everything :class:`Client` and :class:`AsyncClient` share, free of I/O.

Each operation is a generator that yields *effects* (:class:`Send`: make this HTTP
request and send me the response, or throw the transport error in; :class:`Sleep`: wait
this long) and returns the operation's result. The synchronous and the asynchronous client
differ only in the small driver that carries the effects out (``_run``), so request
building, response parsing, retries, failover and ``update`` exist once.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import ssl
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote

import httpx

from ._errors import (
    Conflict,
    ConnectionFailed,
    DynamoError,
    Forbidden,
    InvalidRequest,
    NotAuthorized,
    SiblingsError,
    TLSError,
    Unavailable,
)

__version__ = "0.1.0"

CONTEXT_HEADER = "X-Dynamo-Context"
# Most keys one POST /v1/batch/get takes; get_many splits longer lists.
BATCH_LIMIT = 100
# Answers worth trying again: 503 (quorum_unavailable, overloaded, too_many_connections,
# storage_unavailable, not_ready) and 507 (a full data volume on the coordinator; another
# node coordinates the write with the other replicas).
RETRY_STATUSES = frozenset({503, 507})
# Transport errors raised before the request left: retrying them never repeats a write.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

T = TypeVar("T")


@dataclass(frozen=True)
class Versions:
    """What a read of one key found.

    ``values`` holds every live version: one normally, several when concurrent writes made
    siblings, none when the key is absent or deleted. ``context`` is the causal context of
    the read (also of a deletion's tombstone, so a later write supersedes it); pass it to
    ``put``/``delete`` so the write supersedes exactly what this read saw.
    """

    key: str
    context: str | None = None
    values: list[bytes] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        """Whether the key has at least one live value."""
        return bool(self.values)

    @property
    def value(self) -> bytes | None:
        """The single value; ``None`` when the key is absent.

        Raises :class:`SiblingsError` when the key has several concurrent values.
        """
        if len(self.values) > 1:
            raise SiblingsError(self.key, list(self.values))
        return self.values[0] if self.values else None


@dataclass(frozen=True)
class Retry:
    """How requests are retried: 503/507 answers and transport errors, never 4xx.

    At most ``attempts`` requests per call (1 = no retry). Before a retry the client waits a
    random time between 0 and ``min(cap, base * 2**n)`` seconds for the n-th wait ("full
    jitter"), at least a ``Retry-After`` the node sent (up to ``cap``). After a connection
    error the next URL is tried at once when the call has not tried it yet.
    """

    attempts: int = 5
    base: float = 0.05
    cap: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("Retry.base and Retry.cap must not be negative")

    def backoff(self, n: int) -> float:
        """A random wait before the retry that follows the ``n``-th failure (from 0)."""
        return random.uniform(0.0, min(self.cap, self.base * 2.0 ** min(n, 64)))


@dataclass(frozen=True)
class Request:
    """One HTTP request of the API, relative to a node's base URL."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    # Safe to send again after it may have reached a node (GETs, writes with a context).
    idempotent: bool = True

    def url(self, base: str) -> str:
        """The absolute URL at the node ``base``."""
        if not self.query:
            return base + self.path
        return base + self.path + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in self.query)


@dataclass(frozen=True)
class Send:
    """Effect: send ``method url`` with ``headers`` and ``content``; the driver sends back
    the ``httpx.Response`` or throws the ``httpx.TransportError`` into the operation."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None


@dataclass(frozen=True)
class Sleep:
    """Effect: wait ``seconds`` before going on."""

    seconds: float


Effect: TypeAlias = Send | Sleep
Op: TypeAlias = Generator[Effect, Any, T]


def encode_key(key: str) -> str:
    """The key as it goes in the path after ``/v1/kv/``: one path segment, every UTF-8 byte
    percent-encoded except ``A-Z a-z 0-9 - _ ~`` (``/`` and ``.`` too, which the node
    decodes back), so no library or proxy on the way merges ``//`` or resolves ``.`` and
    ``..`` in it (``a/../b`` must not become ``b``)."""
    return quote(key, safe="").replace(".", "%2E")


def kv_path(key: str) -> str:
    """The path of ``key`` under ``/v1/kv/``."""
    return "/v1/kv/" + encode_key(key)


def quorum_query(**quorums: int | None) -> tuple[tuple[str, str], ...]:
    """Query parameters for the quorums given (``r``, ``w``), skipping ``None``."""
    return tuple((name, str(value)) for name, value in quorums.items() if value is not None)


def normalize_urls(urls: str | Sequence[str]) -> list[str]:
    """The node base URLs without trailing slashes; at least one, each http(s)://."""
    listed = [urls] if isinstance(urls, str) else list(urls)
    if not listed:
        raise ValueError("at least one node URL is needed")
    result = []
    for url in listed:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"node URL {url!r} must start with http:// or https://")
        result.append(url.rstrip("/"))
    return result


def tls_context(ca_file: str | None) -> ssl.SSLContext | bool:
    """What httpx verifies servers with: exactly the CA bundle ``ca_file`` when given, else
    the default trust store."""
    if ca_file is None:
        return True
    return ssl.create_default_context(cafile=ca_file)


def _error_body(response: httpx.Response) -> tuple[str, str] | None:
    """``(code, message)`` of a JSON error body, or ``None``."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(code, str) and isinstance(message, str):
        return code, message
    return None


_ERROR_CLASSES: dict[int, type[DynamoError]] = {
    400: InvalidRequest,
    401: NotAuthorized,
    403: Forbidden,
    409: Conflict,
    503: Unavailable,
    507: Unavailable,
}


def error_from_response(response: httpx.Response) -> DynamoError:
    """The exception for an error answer, with the server's status, code and message."""
    status = response.status_code
    parsed = _error_body(response)
    if parsed is None:
        text = response.text.strip()[:200] if response.content else ""
        code, message = f"http_{status}", text or response.reason_phrase or "no error body"
    else:
        code, message = parsed
    return _ERROR_CLASSES.get(status, DynamoError)(status, code, message)


def protocol_error(response: httpx.Response, what: str) -> DynamoError:
    """An answer that does not have the shape the API promises."""
    return DynamoError(response.status_code, "protocol_error", f"{response.request.url}: {what}")


def _decode_values(response: httpx.Response, raw: Any) -> list[bytes]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise protocol_error(response, "'values' is not a list of base64 strings")
    try:
        return [base64.b64decode(v, validate=True) for v in raw]
    except binascii.Error as error:
        raise protocol_error(response, f"a value is not valid base64: {error}") from error


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise protocol_error(response, "the body is not JSON") from error
    if not isinstance(body, dict):
        raise protocol_error(response, "the body is not a JSON object")
    return body


def _optional_str(response: httpx.Response, value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise protocol_error(response, f"{name!r} is not a string or null")


def is_absent(response: httpx.Response) -> bool:
    """Whether the answer says the key has no live value (``404 not_found``); a ``404``
    with another code (``no_such_route``: a wrong base URL) is an error, not an absent key."""
    if response.status_code != 404:
        return False
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and error.get("code") == "not_found"


def parse_read(key: str, response: httpx.Response) -> Versions:
    """A GET of one key: 200/300 with the JSON shape, or 404 (absent, maybe a tombstone)."""
    status = response.status_code
    if is_absent(response):
        return Versions(key, response.headers.get(CONTEXT_HEADER), [])
    if status not in (200, 300):
        raise error_from_response(response)
    if not response.headers.get("content-type", "").startswith("application/json"):
        # A node that ignored Accept: the body is the single value itself.
        return Versions(key, response.headers.get(CONTEXT_HEADER), [response.content])
    body = _json_object(response)
    context = _optional_str(response, body.get("context"), "context")
    values = _decode_values(response, body.get("values"))
    return Versions(key, context or response.headers.get(CONTEXT_HEADER), values)


def parse_write(response: httpx.Response) -> str:
    """A PUT: the new version's context."""
    if response.status_code not in (200, 201, 204):
        raise error_from_response(response)
    context: str | None = response.headers.get(CONTEXT_HEADER)
    if not context:
        raise protocol_error(response, f"no {CONTEXT_HEADER} header in the answer to a write")
    return context


def parse_delete(response: httpx.Response) -> str | None:
    """A DELETE: the tombstone's context, or ``None`` when there was nothing to delete."""
    if is_absent(response):
        return None
    if response.status_code not in (200, 204):
        raise error_from_response(response)
    context: str | None = response.headers.get(CONTEXT_HEADER)
    return context


def parse_batch(keys: list[str], response: httpx.Response) -> dict[str, Versions]:
    """A POST /v1/batch/get: one item per requested key."""
    if response.status_code != 200:
        raise error_from_response(response)
    items = _json_object(response).get("items")
    if not isinstance(items, list):
        raise protocol_error(response, "'items' is not a list")
    found: dict[str, Versions] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise protocol_error(response, "an item is not an object with a string 'key'")
        key = item["key"]
        context = _optional_str(response, item.get("context"), "context")
        found[key] = Versions(key, context, _decode_values(response, item.get("values")))
    missing = [k for k in keys if k not in found]
    if missing:
        raise protocol_error(response, f"no item for the requested key(s) {missing[:5]!r}")
    return {k: found[k] for k in keys}


def parse_list_page(response: httpx.Response) -> tuple[list[str], str | None]:
    """A GET /v1/kv?prefix=...: the page's keys and the cursor of the next (``None``: done)."""
    if response.status_code != 200:
        raise error_from_response(response)
    body = _json_object(response)
    keys = body.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise protocol_error(response, "'keys' is not a list of strings")
    return keys, _optional_str(response, body.get("cursor"), "cursor")


def _tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error, when it is one retrying cannot fix."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) and not isinstance(
            current, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


def dedupe(keys: Iterable[str]) -> list[str]:
    """``keys`` without repetitions, in first-seen order."""
    return list(dict.fromkeys(keys))


UpdateFn: TypeAlias = Callable[[list[bytes]], bytes | None]


class BaseClient:
    """Configuration and the operations (as effect generators) of both clients."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str | None,
        retry: Retry,
    ) -> None:
        self._urls = normalize_urls(urls)
        self._retry = retry
        self._index = 0
        self._headers = {"Accept": "application/json", "User-Agent": f"dynamo-kv-client/{__version__}"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"

    @property
    def urls(self) -> list[str]:
        """The node base URLs, in the order they are tried."""
        return list(self._urls)

    @property
    def retry(self) -> Retry:
        """The retry policy."""
        return self._retry

    def _advance(self, index: int) -> None:
        """Makes the URL after ``index`` the one to use, unless a concurrent call already
        moved on."""
        if self._index == index:
            self._index = (index + 1) % len(self._urls)

    def _call(self, request: Request) -> Op[httpx.Response]:
        """Sends ``request`` with retries and failover; the first answer that is not a 503/507
        (4xx included, for the caller to interpret), else raises :class:`Unavailable`,
        :class:`ConnectionFailed` or :class:`TLSError`."""
        headers = dict(self._headers)
        headers.update(request.headers)
        attempts = self._retry.attempts
        tried: set[int] = set()
        waits = 0
        failure: DynamoError | None = None
        cause: BaseException | None = None
        for attempt in range(attempts):
            index = self._index
            tried.add(index)
            base = self._urls[index]
            retry_after = 0.0
            try:
                response: httpx.Response = yield Send(
                    request.method, request.url(base), headers, request.content
                )
            except httpx.TransportError as error:
                tls = _tls_failure(error)
                if tls is not None:
                    raise TLSError(
                        None,
                        "tls_error",
                        f"TLS with {base} failed: {tls}; if the cluster has its own CA, "
                        "pass ca_file=<its ca.crt> to the client",
                    ) from error
                hint = ""
                if isinstance(error, httpx.RemoteProtocolError) and base.startswith("http://"):
                    # What a node serving HTTPS (--tls-dir) answers to plain HTTP looks like.
                    hint = " (if the node serves HTTPS, use an https:// URL)"
                failure = ConnectionFailed(
                    None,
                    "connection_failed",
                    f"{request.method} {request.path} at {base} (attempt {attempt + 1} of {attempts}): "
                    f"{type(error).__name__}: {error or 'no detail'}{hint}",
                )
                cause = error
                if not request.idempotent and not isinstance(error, NOT_SENT):
                    # It may have been applied: a blind write sent again would add a sibling.
                    raise failure from error
                self._advance(index)
                if self._index not in tried:
                    continue  # fail over to a node this call has not tried, at once
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure, cause = error_from_response(response), None
                self._advance(index)
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                yield Sleep(max(self._retry.backoff(waits), min(retry_after, self._retry.cap)))
                waits += 1
        assert failure is not None
        raise failure from cause

    # The operations; Client and AsyncClient run them.

    def _op_get(self, key: str, r: int | None) -> Op[Versions]:
        response = yield from self._call(Request("GET", kv_path(key), quorum_query(r=r)))
        return parse_read(key, response)

    def _op_put(self, key: str, value: bytes, context: str | None, w: int | None) -> Op[str]:
        request = Request(
            "PUT",
            kv_path(key),
            quorum_query(w=w),
            ((CONTEXT_HEADER, context),) if context else (),
            bytes(value),
            idempotent=bool(context),
        )
        return parse_write((yield from self._call(request)))

    def _op_delete(self, key: str, context: str | None, w: int | None, r: int | None) -> Op[str | None]:
        request = Request(
            "DELETE",
            kv_path(key),
            quorum_query(w=w, r=r),
            ((CONTEXT_HEADER, context),) if context else (),
            idempotent=bool(context),
        )
        return parse_delete((yield from self._call(request)))

    def _op_update(
        self, key: str, fn: UpdateFn, r: int | None, w: int | None, attempts: int
    ) -> Op[str | None]:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        for attempt in range(attempts):
            read = yield from self._op_get(key, r)
            new = fn(list(read.values))
            try:
                if new is None:
                    if not read.exists:
                        return None
                    return (yield from self._op_delete(key, read.context or None, w, r))
                return (yield from self._op_put(key, new, read.context, w))
            except Conflict:
                # Siblings arrived between the read and the write: read them too and merge again.
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def _op_get_many(self, keys: Iterable[str], r: int | None) -> Op[dict[str, Versions]]:
        wanted = dedupe(keys)
        result: dict[str, Versions] = {}
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            request = Request(
                "POST",
                "/v1/batch/get",
                quorum_query(r=r),
                (("Content-Type", "application/json"),),
                json.dumps({"keys": chunk}).encode(),
            )
            result.update(parse_batch(chunk, (yield from self._call(request))))
        return result

    def _op_list_page(
        self, prefix: str, limit: int, cursor: str | None, r: int | None
    ) -> Op[tuple[list[str], str | None]]:
        query = [("prefix", prefix)] if prefix else []
        query.append(("limit", str(limit)))
        if cursor is not None:
            query.append(("cursor", cursor))
        query.extend(quorum_query(r=r))
        return parse_list_page((yield from self._call(Request("GET", "/v1/kv", tuple(query)))))


def _retry_after(response: httpx.Response) -> float:
    """Seconds of a ``Retry-After`` header in seconds (0 when absent or a date)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0
