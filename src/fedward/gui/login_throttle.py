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

An attempt is *reserved* before its password is checked (``try_begin``) and counts as a
failure until its verdict comes: an attempt may begin only if it would still be allowed
were every attempt in flight for its keys to fail. Checking first and counting after
the (slow, argon2) check let a burst of parallel guesses all be checked; now N parallel
guesses get exactly the checks that N guesses one after the other would.

User names that cannot be accounts (``USERNAME_PATTERN``) all share one count,
``(invalid)``, so a guesser cannot make the throttle keep a megabyte-long name per
attempt. At most ``max_counts`` counts are kept (10,000, a few MiB), plus those of
attempts in flight: when full, forgotten counts go first, then the oldest unlocked ones,
then the locked ones that end soonest.

Kept in memory: the GUI is one process, and a restart that forgets the counts is
already minutes of delay for a guesser.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from fedward.gui.accounts import USERNAME_PATTERN

INVALID_NAME = "(invalid)"
# The answer to an attempt refused because others of its keys are still being checked:
# an argon2 check takes a fraction of a second.
IN_FLIGHT_RETRY_S = 1.0


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures_per_user_and_address: int = 3
    free_failures_per_address: int = 20
    base_delay_s: float = 30.0
    max_delay_s: float = 15 * 60.0
    forget_after_s: float = 60 * 60.0
    max_counts: int = 10_000


@dataclass(slots=True)
class _Counts:
    failures: int = 0
    last_failure_at: float = 0.0
    locked_until: float = 0.0
    in_flight: int = 0


# ("pair", user name, address) or ("address", "", address)
_Key = tuple[str, str, str]


class Permit:
    """One password check the throttle allows now; end it with exactly one verdict.

    Used as a context manager, a permit left without a verdict (an error, a cancelled
    request) counts as a failure: an attempt whose outcome is unknown is not free.
    """

    def __init__(self, throttle: LoginThrottle, keys: tuple[_Key, _Key]) -> None:
        self._throttle = throttle
        self._keys = keys
        self._ended = False

    def succeeded(self) -> None:
        self._end(failed=False, succeeded=True)

    def failed(self) -> float:
        """Count the failure; returns how long this user must now wait at this address."""
        return self._end(failed=True, succeeded=False)

    def withdrawn(self) -> None:
        """The password was not checked after all: nothing is counted."""
        self._end(failed=False, succeeded=False)

    def _end(self, *, failed: bool, succeeded: bool) -> float:
        if self._ended:
            return 0.0
        self._ended = True
        return self._throttle._finish(self._keys, failed=failed, succeeded=succeeded)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.failed()


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
        self._counts: dict[_Key, _Counts] = {}

    def __len__(self) -> int:
        """How many counts are kept (for the memory bound)."""
        return len(self._counts)

    def wait_s(self, username: str, address: str) -> float:
        """Seconds before ``username`` may try again from ``address``; 0 when it may now."""
        now = self._clock()
        with self._lock:
            return self._wait(_keys(username, address), now)

    def try_begin(self, username: str, address: str) -> Permit | float:
        """A permit to check one password now, or the seconds to wait before trying again."""
        now = self._clock()
        keys = _keys(username, address)
        with self._lock:
            wait = self._wait(keys, now)
            if wait > 0:
                return wait
            for key in keys:
                self._counts_for(key, now).in_flight += 1
        return Permit(self, keys)

    def _wait(self, keys: tuple[_Key, _Key], now: float) -> float:
        waits = [0.0]
        for key in keys:
            entry = self._live(key, now)
            if entry is None:
                continue
            waits.append(entry.locked_until - now)
            if entry.in_flight and entry.failures + entry.in_flight > self._free(key):
                waits.append(IN_FLIGHT_RETRY_S)
        return max(waits)

    def _finish(self, keys: tuple[_Key, _Key], *, failed: bool, succeeded: bool) -> float:
        now = self._clock()
        policy = self.policy
        with self._lock:
            for key in keys:
                # Never forgotten nor evicted while in flight, so it is still there.
                entry = self._counts[key]
                entry.in_flight -= 1
                if failed:
                    entry.failures += 1
                    entry.last_failure_at = now
                    extra = entry.failures - self._free(key)
                    if extra > 0:
                        delay = policy.base_delay_s * math.pow(2, min(extra - 1, 30))
                        entry.locked_until = now + min(delay, policy.max_delay_s)
            if succeeded:
                pair = self._counts[keys[0]]
                pair.failures, pair.locked_until = 0, 0.0
            waits = [0.0]
            for key in keys:
                entry = self._counts[key]
                if entry.in_flight == 0 and entry.failures == 0:
                    del self._counts[key]  # a withdrawn attempt, a success: nothing to keep
                else:
                    waits.append(entry.locked_until - now)
            return max(waits)

    def _free(self, key: _Key) -> int:
        if key[0] == "pair":
            return self.policy.free_failures_per_user_and_address
        return self.policy.free_failures_per_address

    def _stale(self, entry: _Counts, now: float) -> bool:
        return (
            entry.in_flight == 0
            and entry.locked_until <= now
            and entry.last_failure_at < now - self.policy.forget_after_s
        )

    def _live(self, key: _Key, now: float) -> _Counts | None:
        entry = self._counts.get(key)
        if entry is not None and self._stale(entry, now):
            del self._counts[key]
            return None
        return entry

    def _counts_for(self, key: _Key, now: float) -> _Counts:
        entry = self._live(key, now)
        if entry is None:
            if len(self._counts) >= self.policy.max_counts:
                self._make_room(now)
            entry = self._counts[key] = _Counts()
        return entry

    def _make_room(self, now: float) -> None:
        for key in [key for key, entry in self._counts.items() if self._stale(entry, now)]:
            del self._counts[key]
        excess = len(self._counts) - self.policy.max_counts + 1
        if excess <= 0:
            return
        # A tenth at a time, so that a full table is not sorted on every attempt.
        batch = max(excess, self.policy.max_counts // 10)

        def eviction_order(key: _Key) -> tuple[bool, float]:
            entry = self._counts[key]
            locked = entry.locked_until > now
            return locked, entry.locked_until if locked else entry.last_failure_at

        idle = [key for key, entry in self._counts.items() if entry.in_flight == 0]
        for key in sorted(idle, key=eviction_order)[:batch]:
            del self._counts[key]


def _keys(username: str, address: str) -> tuple[_Key, _Key]:
    name = username.lower()
    if not USERNAME_PATTERN.fullmatch(name):
        name = INVALID_NAME
    return ("pair", name, address), ("address", "", address)
