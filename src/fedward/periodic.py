"""``PeriodicTask``: an action run every few seconds on a daemon thread, until stopped.

Background collectors (the upload server's blobs, a node's job folders) share it: a pass
that fails is logged and the next one tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Self

log = logging.getLogger("fedward")


class PeriodicTask:
    def __init__(self, name: str, interval_s: float, action: Callable[[], object]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._action = action
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._action()
            except Exception:  # a worker loop: the next pass may succeed (disk back, ...)
                log.exception("%s: a pass failed", self._name)
