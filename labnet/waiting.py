"""Waiting for something that happens asynchronously (a packet processed, a counter polled,
a process listening): the one polling loop the lab, the demo and the tests share."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def poll(fn: Callable[[], T], timeout: float = 15.0, interval: float = 0.1) -> T:
    """Call fn until it returns something truthy or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = fn()
    return value


def wait_until(fn: Callable[[], T], timeout: float = 15.0, what: str = "condition",
               interval: float = 0.1, error: type[Exception] = AssertionError) -> T:
    """poll(), raising `error` naming `what` when the time runs out."""
    value = poll(fn, timeout, interval)
    if not value:
        raise error(f"timed out after {timeout:g}s waiting for {what}")
    return value
