"""Bounded waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Abort(AssertionError):
    """Raised by a wait_until check to stop waiting at once: the state can
    no longer become the one waited for."""


def wait_until(what: str, check: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Polls `check()` until it returns something truthy and returns that.
    Abort from `check` ends the wait at once; after `timeout` seconds a
    TimeoutError names `what` and the last exception `check` raised."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Abort:
            raise
        except Exception as error:  # noqa: BLE001 - reported on timeout
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what}: not reached within {timeout:g}s{detail}")
        time.sleep(interval)
