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
import math
import numbers
import random
import re
import ssl
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
# A write's attributes (docs/api.md, "Attributes"): metadata headers are META_PREFIX + name.
META_PREFIX = "X-Dynamo-Meta-"
TTL_HEADER = "X-Dynamo-TTL"
EXPIRES_HEADER = "X-Dynamo-Expires-At"
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
class Version:
    """One live version of a key: its bytes and what its write said about them.

    ``content_type`` is the ``Content-Type`` it was written with (``None`` when none),
    ``meta`` its metadata (``X-Dynamo-Meta-{name}`` headers; names in lower case) and
    ``expires_at`` when its TTL runs out (timezone-aware, UTC; ``None`` without a TTL),
    after which it reads as deleted. Equal versions hash equally (``meta`` aside).
    """

    value: bytes
    content_type: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", dict(self.meta))


@dataclass(frozen=True)
class Versions:
    """What a read of one key found.

    ``values`` holds every live version's bytes: one normally, several when concurrent
    writes made siblings, none when the key is absent or deleted (or its TTL passed).
    ``siblings`` holds the same versions in the same order as :class:`Version` objects,
    each with its content type, metadata and expiry. ``context`` is the causal context of
    the read (also of a deletion's tombstone, so a later write supersedes it); pass it to
    ``put``/``delete`` so the write supersedes exactly what this read saw.

    Either of ``values`` and ``siblings`` may be given, the other follows (values alone
    make versions without attributes); given both, they must hold the same bytes.
    """

    key: str
    context: str | None = None
    values: list[bytes] = field(default_factory=list)
    siblings: tuple[Version, ...] = ()

    def __post_init__(self) -> None:
        siblings = tuple(self.siblings)
        if not siblings:
            siblings = tuple(Version(v) for v in self.values)
        elif not self.values:
            object.__setattr__(self, "values", [s.value for s in siblings])
        elif [s.value for s in siblings] != list(self.values):
            raise ValueError("Versions: values and siblings hold different bytes")
        object.__setattr__(self, "siblings", siblings)

    @property
    def exists(self) -> bool:
        """Whether the key has at least one live value."""
        return bool(self.values)

    @property
    def value(self) -> bytes | None:
        """The single value; ``None`` when the key is absent.

        Raises :class:`SiblingsError` when the key has several concurrent values.
        """
        version = self.version
        return None if version is None else version.value

    @property
    def version(self) -> Version | None:
        """The single version with its attributes; ``None`` when the key is absent.

        Raises :class:`SiblingsError` when the key has several concurrent values.
        """
        if len(self.siblings) > 1:
            raise SiblingsError(self.key, list(self.values))
        return self.siblings[0] if self.siblings else None


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


# A TTL: seconds (int or float) or a timedelta.
TTL: TypeAlias = float | timedelta
# Longest TTL the API takes: ten years, in seconds.
MAX_TTL_SECONDS = 315_360_000
# An HTTP token (RFC 9110): what a metadata name may hold.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible ASCII with spaces and tabs inside: what a header value carries unchanged (HTTP
# drops the whitespace around a value).
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ttl_seconds(ttl: TTL) -> int:
    """``ttl`` in whole seconds, rounded up (``0.2`` is 1 s), as the API takes it.

    Raises ``ValueError`` for a TTL that is not positive, not finite or over ten years, and
    ``TypeError`` for anything but a number or a ``timedelta``."""
    if isinstance(ttl, timedelta):
        seconds = -(-ttl // timedelta(seconds=1))  # ceil, exactly
    elif isinstance(ttl, numbers.Real) and not isinstance(ttl, bool):
        if not math.isfinite(ttl):
            raise ValueError(f"ttl must be a finite number of seconds, not {ttl!r}")
        seconds = math.ceil(ttl)
    else:
        raise TypeError(f"ttl must be seconds (int or float) or a timedelta, not {type(ttl).__name__}")
    if seconds <= 0:  # rounding up keeps every positive TTL positive
        raise ValueError(f"ttl must be positive, not {ttl!r}")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be at most {MAX_TTL_SECONDS} s (ten years), not {seconds} s")
    return seconds


def attribute_headers(
    content_type: str | None, meta: Mapping[str, str] | None, ttl: TTL | None
) -> tuple[tuple[str, str], ...]:
    """The headers that give a write its attributes; none for none.

    Raises ``ValueError`` before anything is sent for what HTTP cannot carry as given: a
    metadata name that is not an HTTP token (letters, digits, ``!#$%&'*+-.^_`|~``) or is
    given twice (names are case-insensitive), a content type or metadata value that is not
    visible ASCII or has whitespace around it (an empty content type too), and a bad
    ``ttl`` (see :func:`ttl_seconds`). The node checks the limits (256 bytes of content
    type, 32 metadata entries of 4 KiB in all) and answers ``400 invalid_header``."""
    headers: list[tuple[str, str]] = []
    if content_type is not None:
        if not isinstance(content_type, str) or not _HEADER_VALUE.fullmatch(content_type):
            raise ValueError(
                f"content_type must be visible ASCII without whitespace around it, not {content_type!r}"
            )
        headers.append(("Content-Type", content_type))
    seen: set[str] = set()
    for name, value in (meta or {}).items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(
                f"metadata name {name!r} is not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
            )
        if name.lower() in seen:
            raise ValueError(f"metadata name {name!r} is given twice (names are case-insensitive)")
        seen.add(name.lower())
        if not isinstance(value, str) or (value and not _HEADER_VALUE.fullmatch(value)):
            raise ValueError(
                f"metadata {name!r}: the value must be visible ASCII without whitespace around it, "
                f"not {value!r}"
            )
        headers.append((META_PREFIX + name, value))
    if ttl is not None:
        headers.append((TTL_HEADER, str(ttl_seconds(ttl))))
    return tuple(headers)


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


def _expiry(response: httpx.Response, raw: Any) -> datetime | None:
    """An ``expires_at`` (ms since the Unix epoch, or ``None``) as an aware UTC datetime."""
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        try:
            return _EPOCH + timedelta(milliseconds=raw)
        except OverflowError:
            pass
    raise protocol_error(response, f"'expires_at' {raw!r} is not a time in ms since the Unix epoch")


def _decode_versions(response: httpx.Response, body: dict[str, Any]) -> tuple[Version, ...]:
    """The live versions of a read's JSON (a single read's body or a batch item): its
    ``values`` with the attributes of its ``siblings`` (the same versions in the same
    order; a node from before attributes sends none)."""
    encoded = body.get("values")
    values = _decode_values(response, encoded)
    raw = body.get("siblings")
    if raw is None:
        return tuple(Version(v) for v in values)
    if not isinstance(raw, list) or len(raw) != len(values):
        raise protocol_error(response, "'siblings' is not a list as long as 'values'")
    versions = []
    for sibling, text, value in zip(raw, encoded, values, strict=True):
        if not isinstance(sibling, dict) or sibling.get("value") != text:
            raise protocol_error(response, "a sibling is not an object with the value 'values' has there")
        meta = sibling.get("meta") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise protocol_error(response, "a sibling's 'meta' is not an object of strings")
        versions.append(
            Version(
                value,
                _optional_str(response, sibling.get("content_type"), "content_type"),
                meta,
                _expiry(response, sibling.get("expires_at")),
            )
        )
    return tuple(versions)


def _version_of_headers(response: httpx.Response) -> Version:
    """A single value answered as itself (not JSON), with the attributes in its headers.
    Its ``content_type`` is the answer's (``application/octet-stream`` when written without
    one: a node cannot say otherwise here)."""
    meta = {
        name[len(META_PREFIX) :].lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith(META_PREFIX.lower())
    }
    expires = response.headers.get(EXPIRES_HEADER)
    if expires is not None and not (expires.isascii() and expires.isdigit()):
        raise protocol_error(response, f"{EXPIRES_HEADER} {expires!r} is not a time in ms")
    expires_at = _expiry(response, None if expires is None else int(expires))
    return Version(response.content, response.headers.get("content-type"), meta, expires_at)


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
        version = _version_of_headers(response)
        return Versions(key, response.headers.get(CONTEXT_HEADER), siblings=(version,))
    body = _json_object(response)
    context = _optional_str(response, body.get("context"), "context")
    versions = _decode_versions(response, body)
    return Versions(key, context or response.headers.get(CONTEXT_HEADER), siblings=versions)


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
        found[key] = Versions(key, context, siblings=_decode_versions(response, item))
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
        idempotent = request.idempotent
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
                if not idempotent and not isinstance(error, NOT_SENT):
                    # It may have been applied: a blind write sent again would add a sibling.
                    raise failure from error
                self._advance(index)
                if self._index not in tried:
                    continue  # fail over to a node this call has not tried, at once
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure, cause = error_from_response(response), None
                retry_context = response.headers.get(CONTEXT_HEADER)
                if request.method != "GET" and retry_context:
                    # The write left its version on some replicas; retried with this
                    # context it replaces that version instead of adding a sibling.
                    headers[CONTEXT_HEADER] = retry_context
                    idempotent = True
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

    def _op_put(
        self,
        key: str,
        value: bytes,
        context: str | None,
        w: int | None,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: TTL | None = None,
    ) -> Op[str]:
        attributes = attribute_headers(content_type, meta, ttl)  # ValueError before sending
        return (yield from self._op_write(key, value, context, w, attributes))

    def _op_write(
        self,
        key: str,
        value: bytes,
        context: str | None,
        w: int | None,
        attributes: tuple[tuple[str, str], ...],
    ) -> Op[str]:
        # Without a content type the body goes without Content-Type (httpx adds none for
        # bytes), so the version keeps none.
        request = Request(
            "PUT",
            kv_path(key),
            quorum_query(w=w),
            (((CONTEXT_HEADER, context),) if context else ()) + attributes,
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
        self,
        key: str,
        fn: UpdateFn,
        r: int | None,
        w: int | None,
        attempts: int,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: TTL | None = None,
    ) -> Op[str | None]:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        attributes = attribute_headers(content_type, meta, ttl)
        for attempt in range(attempts):
            read = yield from self._op_get(key, r)
            new = fn(list(read.values))
            try:
                if new is None:
                    if not read.exists:
                        return None
                    return (yield from self._op_delete(key, read.context or None, w, r))
                return (yield from self._op_write(key, new, read.context, w, attributes))
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
