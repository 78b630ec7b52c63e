"""Slow down password guessing: after a few failures, sign-in waits, longer each time.

Failures are counted per user name and per client address. A key with more than its
free failures is locked for ``base_delay_s * 2**(extra failures - 1)`` seconds (capped),
and while locked every attempt for it is refused without checking the password, so a
guesser cannot learn anything from the answers. A success clears the user name's count
(not the address's: one good account must not reset a guessing address). Counts are
forgotten ``forget_after_s`` after the last failure.

Kept in memory: the GUI is one process, and a restart that forgets the counts is
already minutes of delay for a guesser.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures_per_user: int = 3
    free_failures_per_address: int = 20
    base_delay_s: float = 30.0
    max_delay_s: float = 15 * 60.0
    forget_after_s: float = 60 * 60.0


@dataclass
class _Failures:
    count: int = 0
    last_failure_at: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(
        self,
        policy: ThrottlePolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], _Failures] = {}

    def wait_s(self, username: str, address: str) -> float:
        """Seconds before ``username`` may try again from ``address``; 0 when it may now."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            waits = [
                entry.locked_until - now
                for key in self._keys(username, address)
                if (entry := self._failures.get(key)) is not None
            ]
        return max([0.0, *waits])

    def failed(self, username: str, address: str) -> float:
        """Count one failure; returns how long the user must now wait."""
        now = self._clock()
        policy = self.policy
        with self._lock:
            self._forget_old(now)
            for key in self._keys(username, address):
                entry = self._failures.setdefault(key, _Failures())
                entry.count += 1
                entry.last_failure_at = now
                free = (
                    policy.free_failures_per_user
                    if key[0] == "user"
                    else policy.free_failures_per_address
                )
                extra = entry.count - free
                if extra > 0:
                    delay = policy.base_delay_s * math.pow(2, min(extra - 1, 30))
                    entry.locked_until = now + min(delay, policy.max_delay_s)
        return self.wait_s(username, address)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username), None)

    @staticmethod
    def _keys(username: str, address: str) -> list[tuple[str, str]]:
        return [("user", username.lower()), ("address", address)]

    def _forget_old(self, now: float) -> None:
        horizon = now - self.policy.forget_after_s
        stale = [
            key
            for key, entry in self._failures.items()
            if entry.last_failure_at < horizon and entry.locked_until <= now
        ]
        for key in stale:
            del self._failures[key]
