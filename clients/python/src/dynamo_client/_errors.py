"""The exceptions the client raises."""

from __future__ import annotations


class DynamoError(Exception):
    """An error answer of the store, or a failure to get one.

    ``status`` is the HTTP status (``None`` when there was no answer, as for
    :class:`ConnectionFailed`), ``code`` the server's error code (such as
    ``invalid_parameter`` or ``quorum_unavailable``; for an answer without the
    JSON error body, ``http_<status>``) and ``message`` its text.
    """

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class InvalidRequest(DynamoError):
    """400: the server refused the request itself (``invalid_key``, ``invalid_parameter``,
    ``invalid_context``, ``invalid_header``, ...). Never retried."""


class NotAuthorized(DynamoError):
    """401: the node requires a bearer token and the request had none it knows."""


class Forbidden(DynamoError):
    """403: the token is valid but does not cover the request (another role's route, a key
    outside the client's prefix, a write with a read token)."""


class Conflict(DynamoError):
    """409: the write would leave the key with too many siblings (``too_many_siblings``) or
    too many bytes of versions (``object_too_large``); nothing was written. Read the key and
    write with that read's context (which is what :meth:`Client.update` does)."""


class Unavailable(DynamoError):
    """The store could not serve the request within the retry budget: the last answer was a
    503 (``quorum_unavailable``, ``overloaded``, ``attributes_unavailable`` for a write with
    attributes during an upgrade, ...) or a 507 (``insufficient_storage``)."""


class ConnectionFailed(Unavailable):
    """No node could be reached (connection refused, timeout, connection reset) within the
    retry budget. ``status`` is ``None``; the last transport error is ``__cause__``."""


class TLSError(DynamoError):
    """The TLS handshake failed, typically because the node's certificate is not signed by a
    trusted CA: pass ``ca_file`` with the cluster's CA. Never retried; ``status`` is
    ``None``."""


class SiblingsError(DynamoError):
    """:attr:`Versions.value` was asked for the single value of a key that has several
    (concurrent) versions. ``values`` holds them; merge them and write the result with the
    read's context (or use :meth:`Client.update`)."""

    def __init__(self, key: str, values: list[bytes]) -> None:
        super().__init__(
            None,
            "siblings",
            f"key {key!r} has {len(values)} concurrent versions; merge them "
            "(Versions.values) and write with the read's context, or use update()",
        )
        self.key = key
        self.values = values
