"""``FairInbox``: a channel's incoming messages, served round-robin by topic.

Each peer publishes on topics of its own (the broker's ACL binds a node to its reply
and event topics), so a topic stands for a sender. One FIFO for all of them would let a
peer that floods its topic, with well-formed messages each costing a decode, push every
other peer's replies past their deadlines and grow the receiver's memory without bound.
Here each topic has its own bounded queue and the reader takes one message per topic in
turn: a flood delays its own topic only, and what a topic holds beyond its budget is
dropped (the sender is the one losing messages). Order within a topic is kept; across
topics, messages that do not wait are served in arrival order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque

log = logging.getLogger(__name__)

#: A topic's backlog, in messages and bytes. Far above what an honest peer has pending
#: (a handful of replies and a plan's progress scalars, handled in microseconds each).
MAX_MESSAGES_PER_TOPIC = 1024
MAX_BYTES_PER_TOPIC = 16 << 20
DROP_WARNING_INTERVAL_S = 10.0


class FairInbox:
    def __init__(
        self,
        max_messages_per_topic: int = MAX_MESSAGES_PER_TOPIC,
        max_bytes_per_topic: int = MAX_BYTES_PER_TOPIC,
    ) -> None:
        self._max_messages = max_messages_per_topic
        self._max_bytes = max_bytes_per_topic
        self._ready = threading.Condition()
        # Topics with messages waiting, in the order they are to be served.
        self._topics: OrderedDict[str, deque[bytes]] = OrderedDict()
        self._bytes: dict[str, int] = {}
        self._dropped: dict[str, int] = {}
        self._warned_at: dict[str, float] = {}
        self._closed = False

    def put(self, topic: str, payload: bytes) -> bool:
        """Queue one message; False when its topic's backlog is full and it was dropped."""
        with self._ready:
            waiting = self._topics.get(topic)
            held = self._bytes.get(topic, 0)
            if waiting is not None and (
                len(waiting) >= self._max_messages or held + len(payload) > self._max_bytes
            ):
                self._note_drop(topic)
                return False
            if waiting is None:
                waiting = self._topics[topic] = deque()
            waiting.append(payload)
            self._bytes[topic] = held + len(payload)
            self._ready.notify()
            return True

    def get(self) -> tuple[str, bytes] | None:
        """The next message, waiting for one; None once closed and drained."""
        with self._ready:
            while not self._topics and not self._closed:
                self._ready.wait()
            if not self._topics:
                return None
            topic, waiting = self._topics.popitem(last=False)
            payload = waiting.popleft()
            if waiting:
                self._topics[topic] = waiting  # back of the line
                self._bytes[topic] -= len(payload)
            else:
                del self._bytes[topic]
            return topic, payload

    def close(self) -> None:
        """No more messages will come; ``get`` hands out what waits, then None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def dropped(self, topic: str) -> int:
        with self._ready:
            return self._dropped.get(topic, 0)

    def _note_drop(self, topic: str) -> None:
        count = self._dropped[topic] = self._dropped.get(topic, 0) + 1
        now = time.monotonic()
        if now - self._warned_at.get(topic, -DROP_WARNING_INTERVAL_S) >= DROP_WARNING_INTERVAL_S:
            self._warned_at[topic] = now
            log.warning(
                "dropping messages on %s: its sender is %d messages or %d MiB ahead of us "
                "(%d dropped so far); other senders are served in turn",
                topic,
                self._max_messages,
                self._max_bytes >> 20,
                count,
            )
