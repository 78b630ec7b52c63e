"""Every password check the GUI makes for a visitor: reserved under the throttle, then run
in one of a few check slots.

The throttle (``login_throttle``) bounds the checks per (user, address) and per address;
the slots bound them all together. An argon2id check holds 64 MiB for a fraction of a
second, and a burst of sign-ins spread over names and addresses (each within its own
allowance) would otherwise run one check per server thread at once: 40 of them took the
GUI to 2.4 GiB and kept every page waiting. A check that gets no slot within
``slot_wait_s`` is not made and the visitor is told to try again, as when throttled;
the attempt is not counted as a failure, since no password was checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from starlette.concurrency import run_in_threadpool

from fedward.errors import AccessDenied
from fedward.gui.login_throttle import LoginThrottle, Permit

T = TypeVar("T")

# Two checks at once keep a sign-in prompt (a check takes ~0.1 s) and the memory of a
# burst at ~128 MiB.
CHECK_SLOTS = 2
SLOT_WAIT_S = 2.0


@dataclass(frozen=True)
class NotChecked:
    """The password was not checked; the visitor may try again in ``wait_s``."""

    wait_s: float
    reason: Literal["throttled", "busy"]


@dataclass(frozen=True)
class WrongPassword:
    error: AccessDenied
    wait_s: float  # the delay this failure started; 0 when the visitor may retry at once


class _NoSlot:
    pass


class PasswordGate:
    def __init__(
        self,
        throttle: LoginThrottle,
        *,
        slots: int = CHECK_SLOTS,
        slot_wait_s: float = SLOT_WAIT_S,
    ) -> None:
        self.throttle = throttle
        self._slots = threading.BoundedSemaphore(slots)
        self._slot_wait_s = slot_wait_s

    async def check(
        self, username: str, address: str, verify: Callable[[], T]
    ) -> T | NotChecked | WrongPassword:
        """``verify()``'s result, unless it raised ``AccessDenied`` or was not run."""
        begun = self.throttle.try_begin(username, address)
        if not isinstance(begun, Permit):
            return NotChecked(begun, "throttled")
        with begun as permit:
            try:
                # Not cancelled while the thread runs, so the permit outlives the check.
                result = await run_in_threadpool(self._in_slot, verify)
            except AccessDenied as exc:
                return WrongPassword(exc, permit.failed())
            if isinstance(result, _NoSlot):
                permit.withdrawn()
                return NotChecked(self._slot_wait_s, "busy")
            permit.succeeded()
            return result

    def _in_slot(self, verify: Callable[[], T]) -> T | _NoSlot:
        if not self._slots.acquire(timeout=self._slot_wait_s):
            return _NoSlot()
        try:
            return verify()
        finally:
            self._slots.release()
