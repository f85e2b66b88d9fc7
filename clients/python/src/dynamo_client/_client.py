"""The synchronous :class:`Client` and the asynchronous :class:`AsyncClient`.

Both are thin: every operation is built and interpreted in ``_core`` and only carried out
here (``_run``), with httpx's blocking or asyncio client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from ._core import TTL, BaseClient, Op, Retry, Send, T, UpdateFn, Versions, tls_context

DEFAULT_UPDATE_ATTEMPTS = 3


class Client(BaseClient):
    """A blocking client of the store, safe to share between threads.

    ``urls``: one node's base URL (``http://127.0.0.1:7000``) or several; any node serves
    any key. Requests go to one node and move on to the next after a connection error or a
    503/507 (the client then stays with the node that answered). ``token``: the bearer token
    of a node started with ``--auth-dir``. ``ca_file``: a PEM CA bundle to trust (exactly)
    for ``https://`` nodes. ``timeout``: seconds for connecting and for each read or write
    of a request. ``retry``: see :class:`Retry`. ``event_hooks`` and ``transport`` go to
    the underlying ``httpx.Client`` (logging, metrics, tests; a ``transport`` brings its own
    TLS settings, so ``ca_file`` does not apply to it).

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 5.0,
        retry: Retry = Retry(),  # noqa: B008 (immutable)
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(urls, token=token, retry=retry)
        self._http = httpx.Client(
            verify=tls_context(ca_file),
            timeout=timeout,
            event_hooks=event_hooks,
            transport=transport,
        )

    def _run(self, op: Op[T]) -> T:
        try:
            effect = next(op)
            while True:
                if isinstance(effect, Send):
                    try:
                        response = self._http.request(
                            effect.method, effect.url, headers=effect.headers, content=effect.content
                        )
                    except httpx.TransportError as error:
                        effect = op.throw(error)
                    else:
                        effect = op.send(response)
                else:
                    time.sleep(effect.seconds)
                    effect = op.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def get(self, key: str, *, r: int | None = None) -> Versions:
        """Reads ``key`` with read quorum ``r`` (default: the node's).

        Returns every live version (``values``; with their attributes, ``siblings``) and
        the read's context; an absent or deleted key, or one whose versions' TTLs passed,
        gives ``values == []`` (and the tombstone's context, if any). Never raises for
        siblings.
        """
        return self._run(self._op_get(key, r))

    def put(
        self,
        key: str,
        value: bytes,
        *,
        context: str | None = None,
        w: int | None = None,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: TTL | None = None,
    ) -> str:
        """Writes ``value`` with write quorum ``w``; returns the new version's context.

        With ``context`` (from a read of this key) the write supersedes the versions that
        read saw; without, it supersedes nothing (an existing value becomes a sibling).

        The version keeps the attributes given, which reads return (:class:`Version`):
        ``content_type`` (sent as the ``Content-Type``; without it none is sent or kept),
        ``meta`` (``{name: value}``, sent as ``X-Dynamo-Meta-{name}`` headers; names are
        HTTP tokens, case-insensitive, read back in lower case) and ``ttl`` (seconds or a
        ``timedelta``, rounded up to whole seconds, 1 s to ten years), after which the
        version reads as deleted. They belong to this version only: a later write keeps
        only those it gives. A bad name, value or TTL raises ``ValueError`` and sends
        nothing. While the cluster is being upgraded from a release without attributes, a
        write with any answers ``503 attributes_unavailable``, retried like any 503.
        """
        return self._run(self._op_put(key, value, context, w, content_type, meta, ttl))

    def delete(
        self, key: str, *, context: str | None = None, w: int | None = None, r: int | None = None
    ) -> str | None:
        """Deletes ``key``: returns the tombstone's context, or ``None`` when there was
        nothing live to delete.

        With ``context`` the tombstone supersedes what that read saw; without, the node
        reads the key (quorum ``r``) and deletes what it found.
        """
        return self._run(self._op_delete(key, context, w, r))

    def update(
        self,
        key: str,
        fn: UpdateFn,
        *,
        r: int | None = None,
        w: int | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: TTL | None = None,
    ) -> str | None:
        """Read-modify-write: reads ``key``, calls ``fn(values)`` with its live values
        (``[]`` when absent; several when there are siblings, which ``fn`` merges) and
        writes what it returns with the read's context, or deletes the key when it returns
        ``None``.

        Returns the context of the written version (or tombstone); ``None`` when ``fn``
        returned ``None`` for an absent key (nothing written). A write refused with 409
        (siblings arrived meanwhile) starts again from the read, up to ``attempts`` times.
        ``content_type``, ``meta`` and ``ttl`` are the written version's, as for
        :meth:`put` (the read versions' attributes are not carried over).
        """
        return self._run(self._op_update(key, fn, r, w, attempts, content_type, meta, ttl))

    def get_many(self, keys: Iterable[str], *, r: int | None = None) -> dict[str, Versions]:
        """Reads several keys (``POST /v1/batch/get``, 100 keys per request): a dict in the
        order of ``keys`` (repetitions once) with a :class:`Versions` for each, empty for
        an absent key."""
        return self._run(self._op_get_many(keys, r))

    def list_keys(self, prefix: str = "", *, page_size: int = 100, r: int | None = None) -> Iterator[str]:
        """The keys starting with ``prefix`` that have a live value, in ring order (not
        sorted), fetched by pages of at most ``page_size`` (1 to 1000) as the iterator is
        consumed. ``r``: owners read per partition; the node's default is 1, which may miss
        a write that has not reached the owner asked yet (``r=N`` sees every key)."""
        cursor: str | None = None
        while True:
            keys, cursor = self._run(self._op_list_page(prefix, page_size, cursor, r))
            yield from keys
            if cursor is None:
                return

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(BaseClient):
    """The asyncio client: :class:`Client`'s constructor and methods, as coroutines
    (``list_keys`` is an async iterator). Use ``async with``, or ``await client.close()``.
    ``event_hooks`` must be async functions and ``transport`` an
    ``httpx.AsyncBaseTransport``."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 5.0,
        retry: Retry = Retry(),  # noqa: B008 (immutable)
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(urls, token=token, retry=retry)
        self._http = httpx.AsyncClient(
            verify=tls_context(ca_file),
            timeout=timeout,
            event_hooks=event_hooks,
            transport=transport,
        )

    async def _run(self, op: Op[T]) -> T:
        try:
            effect = next(op)
            while True:
                if isinstance(effect, Send):
                    try:
                        response = await self._http.request(
                            effect.method, effect.url, headers=effect.headers, content=effect.content
                        )
                    except httpx.TransportError as error:
                        effect = op.throw(error)
                    else:
                        effect = op.send(response)
                else:
                    await asyncio.sleep(effect.seconds)
                    effect = op.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def get(self, key: str, *, r: int | None = None) -> Versions:
        """See :meth:`Client.get`."""
        return await self._run(self._op_get(key, r))

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        context: str | None = None,
        w: int | None = None,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: TTL | None = None,
    ) -> str:
        """See :meth:`Client.put`."""
        return await self._run(self._op_put(key, value, context, w, content_type, meta, ttl))

    async def delete(
        self, key: str, *, context: str | None = None, w: int | None = None, r: int | None = None
    ) -> str | None:
        """See :meth:`Client.delete`."""
        return await self._run(self._op_delete(key, context, w, r))

    async def update(
        self,
        key: str,
        fn: UpdateFn,
        *,
        r: int | None = None,
        w: int | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        ttl: TTL | None = None,
    ) -> str | None:
        """See :meth:`Client.update` (``fn`` is a plain function)."""
        return await self._run(self._op_update(key, fn, r, w, attempts, content_type, meta, ttl))

    async def get_many(self, keys: Iterable[str], *, r: int | None = None) -> dict[str, Versions]:
        """See :meth:`Client.get_many`."""
        return await self._run(self._op_get_many(keys, r))

    async def list_keys(
        self, prefix: str = "", *, page_size: int = 100, r: int | None = None
    ) -> AsyncIterator[str]:
        """See :meth:`Client.list_keys`; use ``async for``."""
        cursor: str | None = None
        while True:
            keys, cursor = await self._run(self._op_list_page(prefix, page_size, cursor, r))
            for key in keys:
                yield key
            if cursor is None:
                return

    async def close(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
