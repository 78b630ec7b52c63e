"""Who the embedded broker lets in before it knows who they are.

- :class:`ConnectionSlots`: a connection takes a slot when it is accepted and gives it
  back when it ends; until its CONNACK it also holds a handshake slot of its address. A
  connection that finds no slot is closed at once, before a byte of it is read, so
  strangers make the broker hold at most ``MAX_HANDSHAKES`` small CONNECTs, and never
  more connections than configured.
- :class:`PasswordChecks`: PBKDF2 checks run in a few threads of their own; the others
  wait their turn, taken by address in round robin, and a bounded number of them.

Both are touched only from the event loop's thread, like the rest of ``BrokerCore``.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor

from fedward.broker.limits import (
    MAX_HANDSHAKES,
    MAX_HANDSHAKES_PER_ADDRESS,
    MAX_WAITING_PASSWORD_CHECKS,
    PASSWORD_CHECKS_AT_ONCE,
)
from fedward.broker.passwords import verify_password


class ConnectionSlots:
    """Counts connections, in all and (per address) those still in their handshake."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.connections = 0
        self.handshakes = 0
        self._handshakes_of: Counter[str] = Counter()

    def open(self, address: str) -> bool:
        """Take a connection slot and a handshake slot of ``address``; False if none is left."""
        if (
            self.connections >= self.max_connections
            or self.handshakes >= MAX_HANDSHAKES
            or self._handshakes_of[address] >= MAX_HANDSHAKES_PER_ADDRESS
        ):
            return False
        self.connections += 1
        self.handshakes += 1
        self._handshakes_of[address] += 1
        return True

    def end_handshake(self, address: str) -> None:
        """The connection was answered (accepted or refused); call once per ``open``."""
        self.handshakes -= 1
        self._handshakes_of[address] -= 1
        if not self._handshakes_of[address]:
            del self._handshakes_of[address]  # one entry per address seen would grow

    def close(self) -> None:
        """The connection ended; call once per ``open``, after ``end_handshake``."""
        self.connections -= 1


class PasswordChecks:
    """``verify_password`` off the event loop, a few at a time, fairly between addresses."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(
            PASSWORD_CHECKS_AT_ONCE, thread_name_prefix="broker-password"
        )
        self._running = 0
        self._waiting = 0
        # Address -> its checks waiting, in arrival order; the dict's order is the round.
        self._turns: dict[str, deque[asyncio.Future[None]]] = {}

    async def verify(self, address: str, password: str, encoded: str) -> bool | None:
        """Whether ``password`` matches; None when too many checks wait already."""
        if self._running >= PASSWORD_CHECKS_AT_ONCE or self._waiting:
            if self._waiting >= MAX_WAITING_PASSWORD_CHECKS:
                return None
            await self._wait_for_turn(address)
        else:
            self._running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, verify_password, password, encoded
            )
        finally:
            self._running -= 1
            self._start_next()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _wait_for_turn(self, address: str) -> None:
        """Returns holding a running slot, which ``_start_next`` took for us."""
        turn = asyncio.get_running_loop().create_future()
        self._turns.setdefault(address, deque()).append(turn)
        self._waiting += 1
        try:
            await turn
        except asyncio.CancelledError:  # the broker stops
            if turn.done() and not turn.cancelled():
                self._running -= 1  # our turn had come: hand it on
                self._start_next()
            raise  # else _start_next skips the cancelled turn
        finally:
            self._waiting -= 1

    def _start_next(self) -> None:
        while self._running < PASSWORD_CHECKS_AT_ONCE and self._turns:
            address = next(iter(self._turns))
            queue = self._turns.pop(address)
            turn = queue.popleft()
            if queue:
                self._turns[address] = queue  # to the end of the round
            if not turn.done():
                self._running += 1
                turn.set_result(None)
