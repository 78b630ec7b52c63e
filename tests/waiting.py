"""Waiting in tests for something that happens in another thread or process.

Every "until reachable / delivered / started" polls with a deadline that a loaded 2-core
machine (CI, or four test runs side by side) meets, and says what it waited for when it
gives up. The deadline only bounds a failure: a passing wait returns as soon as the
condition holds, so generous deadlines cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LOADED_MACHINE_S = 60.0
"""What a loaded machine may take to start a process, make a handshake or deliver a message."""


def eventually(
    condition: Callable[[], bool], timeout_s: float = LOADED_MACHINE_S, interval_s: float = 0.05
) -> bool:
    """Whether ``condition()`` became true within ``timeout_s`` (checked at least once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def wait_for(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float = LOADED_MACHINE_S,
    interval_s: float = 0.1,
) -> None:
    """Return once ``condition()`` holds; fail the test, naming ``what``, after ``timeout_s``."""
    if not eventually(condition, timeout_s, interval_s):
        raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
