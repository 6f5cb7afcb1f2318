"""Test helpers every app's tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(condition: Callable[[], T], timeout: float = 30.0, what: str = "", *, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something true (returned), or fail after `timeout` seconds
    naming `what` waited for. For work another process or thread does: a worker, a webhook delivery."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not true within {timeout} s: {what or getattr(condition, '__doc__', '') or condition}"
            )
        time.sleep(interval)
