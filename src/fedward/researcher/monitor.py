"""What an experiment tells its observers while it runs (progress display, TensorBoard).

The experiment calls ``round_started``, then ``node_changed`` as each node moves through
``training`` -> ``done`` (its answer arrived) -> ``ok`` / ``failed``, or to ``late`` at
the deadline (``offline`` nodes are reported at the start and not asked), then
``round_finished`` with the round's record. ``scalar`` carries the nodes' live training
values (``ScalarEvent``) and is called from the transport's thread, so observers must be
thread-safe. An observer that raises is logged and ignored: watching an experiment must
never stop it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from fedward.core.messages import ScalarEvent
from fedward.researcher.history import RoundRecord

log = logging.getLogger("fedward.researcher")


class RoundObserver(Protocol):
    def round_started(self, round_index: int, nodes: Sequence[str]) -> None: ...

    def node_changed(self, round_index: int, node_id: str, status: str) -> None: ...

    def scalar(self, node_id: str, event: ScalarEvent) -> None: ...

    def round_finished(self, record: RoundRecord) -> None: ...

    def close(self) -> None: ...


class Observers:
    """Fans every call out to several observers; one failing does not affect the others."""

    def __init__(self, observers: Sequence[RoundObserver] = ()) -> None:
        self.observers = list(observers)

    def _each(self, method: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                log.exception(
                    "experiment observer %s failed in %s", type(observer).__name__, method
                )

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        self._each("round_started", round_index, nodes)

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        self._each("node_changed", round_index, node_id, status)

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        self._each("scalar", node_id, event)

    def round_finished(self, record: RoundRecord) -> None:
        self._each("round_finished", record)

    def close(self) -> None:
        self._each("close")
