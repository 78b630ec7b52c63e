"""Who the embedded broker lets in before it knows who they are: connection slots.

A connection takes a slot when it is accepted and gives it back when it ends; until its
CONNACK it also holds a handshake slot of its address. A connection that finds no slot
is closed at once, before a byte of it is read, so strangers can make the broker hold
at most ``MAX_HANDSHAKES`` small CONNECTs, and never more connections than configured.
Touched only from the event loop's thread, like the rest of ``BrokerCore``.
"""

from __future__ import annotations

from collections import Counter

from fedward.broker.limits import MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDRESS


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
