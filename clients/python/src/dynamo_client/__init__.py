"""Python client of the Dynamo-style key-value store (its HTTP API, docs/api.md).

>>> from dynamo_client import Client
>>> with Client("http://127.0.0.1:7000") as kv:
...     context = kv.put("users/42", b"Ada")
...     kv.get("users/42").value
b'Ada'

:class:`Client` blocks; :class:`AsyncClient` has the same methods as coroutines.
"""

from ._client import AsyncClient, Client
from ._core import TTL, Retry, Version, Versions, __version__, encode_key
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

__all__ = [
    "TTL",
    "AsyncClient",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DynamoError",
    "Forbidden",
    "InvalidRequest",
    "NotAuthorized",
    "Retry",
    "SiblingsError",
    "TLSError",
    "Unavailable",
    "Version",
    "Versions",
    "__version__",
    "encode_key",
]
