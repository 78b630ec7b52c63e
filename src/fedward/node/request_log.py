"""Requests the node has seen, so that a request delivered twice is answered once.

MQTT at QoS 1 delivers at least once: a broker that lost a connection sends unacknowledged
messages again, and a network path can duplicate them. A researcher sends each request
once, under a fresh ``request_id``, so a second delivery is never a new request. Training
one twice would waste a job and, worse, make the node refuse the copy ("a job of this
experiment is already running") with an error the researcher may read first.

So the daemon claims each request before handling it: a new one is handled; a copy of
one still being handled is dropped (its reply is coming); a copy of one already answered
gets that same reply again, in case the first was lost on the way. The log keeps the
last ``capacity`` requests per node process; replies are small control messages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Literal

from fedward.core.messages import Message

Claim = Literal["new", "in_progress"] | Message
_IN_PROGRESS = None


class RequestLog:
    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, str], Message | None] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, researcher_id: str, request_id: str) -> Claim:
        """ "new" (handle it), "in_progress" (drop this copy) or the reply already sent."""
        key = (researcher_id, request_id)
        with self._lock:
            if key in self._seen:
                reply = self._seen[key]
                return "in_progress" if reply is _IN_PROGRESS else reply
            self._seen[key] = _IN_PROGRESS
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return "new"

    def answered(self, researcher_id: str, request_id: str, reply: Message) -> None:
        with self._lock:
            key = (researcher_id, request_id)
            if key in self._seen:
                self._seen[key] = reply
