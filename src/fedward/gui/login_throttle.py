"""Slow down password guessing without letting a guesser lock the real user out.

The policy (also in ``docs/gui.md``):

- Failures are counted per **(user name, client address)** pair. A pair with more than
  ``free_failures_per_user_and_address`` failures (3) is locked for
  ``base_delay_s * 2**(extra failures - 1)`` seconds, capped at ``max_delay_s``. While a
  pair is locked every attempt of it is refused *without checking the password*, so the
  guesser learns nothing from the answers.
- Failures are also counted per **client address**, whatever the user name, with a
  larger allowance (``free_failures_per_address``, 20): one address cannot try many
  names (or the same name spelt many ways) to get more free guesses.
- There is deliberately **no lock per user name alone**: if three failures from
  anywhere locked a user, anyone who knows an administrator's name could keep that
  administrator out. The real user signing in from their own address is never slowed
  by failures from another address. A guesser with many addresses gets 3 free guesses
  per address (then growing delays), against argon2id-hashed passwords that must pass
  zxcvbn's strength estimate (``password_strength``): too few to matter.
- A success clears its own pair only (not the address: one good account must not reset
  a guessing address). Counts are forgotten ``forget_after_s`` after the last failure.
- The same counts guard every check of a password by a signed-in user (changing one's
  own password asks for the current one): a stolen session cannot be used to guess it.

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
    free_failures_per_user_and_address: int = 3
    free_failures_per_address: int = 20
    base_delay_s: float = 30.0
    max_delay_s: float = 15 * 60.0
    forget_after_s: float = 60 * 60.0


@dataclass
class _Failures:
    count: int = 0
    last_failure_at: float = 0.0
    locked_until: float = 0.0


# ("pair", user name, address) or ("address", "", address)
_Key = tuple[str, str, str]


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
        self._failures: dict[_Key, _Failures] = {}

    def wait_s(self, username: str, address: str) -> float:
        """Seconds before ``username`` may try again from ``address``; 0 when it may now."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            waits = [
                entry.locked_until - now
                for key in _keys(username, address)
                if (entry := self._failures.get(key)) is not None
            ]
        return max([0.0, *waits])

    def failed(self, username: str, address: str) -> float:
        """Count one failure; returns how long ``username`` must now wait at ``address``."""
        now = self._clock()
        policy = self.policy
        with self._lock:
            self._forget_old(now)
            for key in _keys(username, address):
                entry = self._failures.setdefault(key, _Failures())
                entry.count += 1
                entry.last_failure_at = now
                free = (
                    policy.free_failures_per_user_and_address
                    if key[0] == "pair"
                    else policy.free_failures_per_address
                )
                extra = entry.count - free
                if extra > 0:
                    delay = policy.base_delay_s * math.pow(2, min(extra - 1, 30))
                    entry.locked_until = now + min(delay, policy.max_delay_s)
        return self.wait_s(username, address)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop(_keys(username, address)[0], None)

    def _forget_old(self, now: float) -> None:
        horizon = now - self.policy.forget_after_s
        stale = [
            key
            for key, entry in self._failures.items()
            if entry.last_failure_at < horizon and entry.locked_until <= now
        ]
        for key in stale:
            del self._failures[key]


def _keys(username: str, address: str) -> tuple[_Key, _Key]:
    return ("pair", username.lower(), address), ("address", "", address)
