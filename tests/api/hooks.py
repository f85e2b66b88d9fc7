"""Schemathesis hooks of tests/api/run.sh: keep the fuzzed node's traffic on loopback.

Ring documents (`PUT /v1/admin/ring`) and member changes (`POST
/v1/admin/members`) carry the `HOST:PORT` addresses the node then dials
its peers at. Fuzzed, they could name any host, and a node that adopts such
a ring would try to reach it. Before every call, each address the node would
accept (a non-empty host, a colon, a port) becomes 127.0.0.1:9, where
nothing listens; other strings stay as generated, so the node's address
validation is still fuzzed. Schemathesis loads this file through
SCHEMATHESIS_HOOKS.
"""

from __future__ import annotations

from typing import Any

import schemathesis

LOOPBACK = "127.0.0.1:9"


def dialable(address: str) -> bool:
    """Whether the node takes `address` as `HOST:PORT` (`RingDocument::validate`)."""
    host, colon, port = address.rpartition(":")
    digits = port.removeprefix("+")  # Rust's u16 parsing takes one leading '+'
    return bool(colon and host and digits and digits.isascii() and digits.isdigit() and int(digits) <= 65535)


def to_loopback(value: Any) -> Any:
    """`value` with every dialable address in it replaced by LOOPBACK."""
    if isinstance(value, list):
        return [to_loopback(item) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[Any, Any] = {}
    for key, item in value.items():
        if key == "address" and isinstance(item, str) and dialable(item):
            result[key] = LOOPBACK
        elif key == "addresses" and isinstance(item, dict):
            result[key] = {
                k: LOOPBACK if isinstance(v, str) and dialable(v) else to_loopback(v) for k, v in item.items()
            }
        else:
            result[key] = to_loopback(item)
    return result


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    """Rewrites the addresses in JSON bodies before they are sent."""
    if isinstance(case.body, dict | list):
        case.body = to_loopback(case.body)
