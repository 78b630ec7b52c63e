"""Confirmations that a downloaded blob was kept, sent off the download's path.

The upload server counts a reader's fetch, for retention, once the reader confirms it
kept the file (``uploads.app``). Waiting for that answer would add a round trip to every
download, and a server that stops answering would hold the caller until its timeout; yet
the confirmation only decides how soon the server may delete the blob. So they go out
in order on one thread of their own, started with the first. A confirmation lost (the
process ended first, the server did not answer) leaves the blob on the server until it
has been idle for its retention time; nothing else depends on it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class KeptConfirmations:
    def __init__(self, deliver: Callable[[str], None]) -> None:
        """``deliver(blob_id)``: sends one confirmation and handles its own failures."""
        self._deliver = deliver
        self._lock = threading.Lock()
        self._sender: tuple[queue.SimpleQueue[str | None], threading.Thread] | None = None

    def send(self, blob_id: str) -> None:
        """Queue a confirmation; returns at once."""
        with self._lock:
            if self._sender is None:
                pending: queue.SimpleQueue[str | None] = queue.SimpleQueue()
                thread = threading.Thread(
                    target=self._run, args=(pending,), name="fedward-kept", daemon=True
                )
                thread.start()
                self._sender = (pending, thread)
            self._sender[0].put(blob_id)

    def close(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for the confirmations queued so far to go out (a later
        ``send`` starts a new thread)."""
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            pending, thread = sender
            pending.put(None)
            thread.join(wait_s)

    def _run(self, pending: queue.SimpleQueue[str | None]) -> None:
        while (blob_id := pending.get()) is not None:
            try:
                self._deliver(blob_id)
            except Exception:  # bookkeeping: never the end of the thread
                log.exception("confirming blob %s failed", blob_id)
