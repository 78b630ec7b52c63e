"""The ``Channel`` interface: small control messages between peers.

Implementations MUST:
- deliver each payload published to a topic to every handler whose filter matches it
  (MQTT ``+``/``#`` rules), at least once while both ends are connected;
- call handlers from a thread of their own, never from inside ``publish``, and call one
  channel's handlers one at a time, in arrival order;
- keep subscriptions across reconnections, and publish again, after each reconnection,
  the latest retained message it sent on each topic (a restarted broker forgot them);
- raise ``TransportError`` (never a foreign exception) when a message cannot be sent;
- make ``close`` idempotent, and publish the ``will`` when the connection is lost
  without ``close``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Handler = Callable[[str, bytes], None]
"""Called with (topic, payload) for each message received."""


@dataclass(frozen=True)
class Will:
    """What the broker publishes for us if we vanish without closing."""

    topic: str
    payload: bytes
    retain: bool = True


class Channel(Protocol):
    def subscribe(self, topic_filter: str, handler: Handler) -> None: ...

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...

    def close(self) -> None: ...
