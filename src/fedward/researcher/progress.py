"""A live progress display: one line per round, which nodes train, are done, late, failed.

On a terminal the line is redrawn in place as nodes move on and their training loss
arrives (at most ten times a second). Elsewhere (a notebook, a log file, a pipe) it
prints plain lines: the round's start, each node's outcome, the round's summary.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from fedward.core.messages import ScalarEvent
from fedward.researcher.history import RoundRecord

_MARKS = {
    "training": "…",
    "done": "↓",
    "ok": "✓",
    "failed": "✗",
    "late": "⌛",
    "offline": "∅",
    # secure aggregation's steps after training
    "keys": "⚷",
    "shares": "⇄",
    "masked": "▒",
    "unmasked": "✓",
}
_REDRAW_S = 0.1


class ProgressDisplay:
    def __init__(self, rounds: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.rounds = rounds
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.live = live if live is not None else bool(isatty and isatty())
        self._lock = threading.Lock()
        self._round = 0
        self._status: dict[str, str] = {}
        self._loss: dict[str, float] = {}
        self._started = time.monotonic()
        self._drawn = 0.0
        self._line_open = False  # a live line is on screen without its newline

    # --- observer -----------------------------------------------------------------------

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        with self._lock:
            self._round = round_index
            self._status = dict.fromkeys(nodes, "training")
            self._loss = {}
            self._started = time.monotonic()
            if not self.live:
                self._print(f"{self._prefix()} asked {', '.join(nodes) or 'no node'}")
            else:
                self._draw(force=True)

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        with self._lock:
            if round_index != self._round:
                return
            previous = self._status.get(node_id)
            self._status[node_id] = status
            if self.live:
                self._draw(force=True)
            elif status != previous and status in ("ok", "failed", "late", "offline"):
                elapsed = time.monotonic() - self._started
                self._print(f"{self._prefix()} {node_id} {status} ({elapsed:.1f} s)")

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        with self._lock:
            if event.round_index != self._round or not event.name.endswith("loss"):
                return
            self._loss[node_id] = event.value
            if self.live:
                self._draw(force=False)

    def round_finished(self, record: RoundRecord) -> None:
        with self._lock:
            summary = self._summary(record)
            if self.live:
                self.stream.write("\r\x1b[K" + summary + "\n")
                self.stream.flush()
                self._line_open = False
            else:
                self._print(summary)

    def close(self) -> None:
        with self._lock:
            if self._line_open:  # a round that failed: keep its last state on screen
                self.stream.write("\n")
                self.stream.flush()
                self._line_open = False

    # --- rendering ----------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"round {self._round + 1}/{self.rounds}"

    def line(self) -> str:
        """The live line as it stands."""
        parts = []
        for node_id, status in sorted(self._status.items()):
            text = f"{node_id} {_MARKS.get(status, status)}"
            if status == "training" and node_id in self._loss:
                text += f" loss {self._loss[node_id]:.4g}"
            parts.append(text)
        elapsed = time.monotonic() - self._started
        return f"{self._prefix()} {elapsed:5.1f}s  " + "  ".join(parts)

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW_S:
            return
        self._drawn = now
        self.stream.write("\r\x1b[K" + self.line())
        self.stream.flush()
        self._line_open = True

    def _summary(self, record: RoundRecord) -> str:
        text = f"{self._prefix()} done in {record.duration_s:.1f} s: {len(record.succeeded)} ok"
        dropped = [f"{n} {record.nodes[n].status}" for n in record.dropped]
        if dropped:
            text += f", dropped {', '.join(dropped)}"
        metrics = record.metrics
        shown = [k for k in sorted(metrics) if k.startswith("global_")][:3]
        if shown:
            text += "; " + ", ".join(f"{k} {metrics[k]:.4f}" for k in shown)
        if record.epsilon is not None:
            text += f"; epsilon {record.epsilon:.3g} (delta {record.delta:g})"
        return text

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
