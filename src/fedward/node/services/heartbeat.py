"""The node daemon's heartbeat: a small JSON file in its state directory.

The daemon rewrites ``heartbeat.json`` every ``BEAT_INTERVAL_S`` seconds with the time,
its pid and the isolation layers its job workers run under (plain lines such as
``"landlock: filesystem restricted to the job folder"``); on a clean stop it writes
``"state": "stopped"``. The GUI reads the file and calls the daemon *online* while the
last beat is younger than ``STALE_AFTER_S``: a daemon killed without a chance to say
so goes offline by itself a few beats later.

A file, not the database: the daemon must not write the shared SQLite file every few
seconds for this, the GUI must not need the broker to know, and a state directory is
already what both of them open.

Daemon side (one of)::

    beating = NodeHeartbeat(config.state_dir).start(isolation_layers)  # a thread
    ...
    beating.stop()                                                      # writes "stopped"

or, from a loop of its own, ``NodeHeartbeat(state_dir).beat(isolation_layers)`` every few
seconds and ``NodeHeartbeat(state_dir).stopped()`` at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HEARTBEAT_FILE = "heartbeat.json"
BEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 3 * BEAT_INTERVAL_S
MAX_FILE_BYTES = 64 * 1024
MAX_LAYERS = 32
MAX_LAYER_CHARS = 300


@dataclass(frozen=True)
class Heartbeat:
    """The last beat read from the file."""

    beat_at: datetime
    pid: int
    running: bool  # False after a clean stop
    isolation_layers: list[str] | None  # None: the daemon did not report them

    def online(self, now: datetime) -> bool:
        age_s = (now - self.beat_at).total_seconds()
        return self.running and -STALE_AFTER_S < age_s <= STALE_AFTER_S


class NodeHeartbeat:
    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(state_dir) / HEARTBEAT_FILE
        self._clock = clock

    def beat(self, isolation_layers: Sequence[str] | None = None) -> None:
        """Say the daemon is alive now, and under which isolation its jobs run."""
        self._write("running", isolation_layers)

    def stopped(self) -> None:
        """Say the daemon stopped on purpose (the GUI shows it offline at once)."""
        previous = self.read()
        self._write("stopped", previous.isolation_layers if previous else None)

    def start(
        self, isolation_layers: Sequence[str] | None = None, interval_s: float = BEAT_INTERVAL_S
    ) -> HeartbeatThread:
        """Beat now and then every ``interval_s`` from a daemon thread until ``stop()``."""
        thread = HeartbeatThread(self, list(isolation_layers or []), interval_s)
        self.beat(isolation_layers)
        thread.start()
        return thread

    def read(self) -> Heartbeat | None:
        """The last beat, or ``None`` if there is none (or it cannot be understood)."""
        try:
            with self.path.open("rb") as handle:
                data = json.loads(handle.read(MAX_FILE_BYTES))
            layers = data.get("isolation_layers")
            return Heartbeat(
                beat_at=datetime.fromtimestamp(float(data["beat_at"]), UTC),
                pid=int(data["pid"]),
                running=data["state"] == "running",
                isolation_layers=(
                    [str(line)[:MAX_LAYER_CHARS] for line in layers[:MAX_LAYERS]]
                    if isinstance(layers, list)
                    else None
                ),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write(self, state: str, isolation_layers: Sequence[str] | None) -> None:
        payload = {
            "state": state,
            "beat_at": self._clock(),
            "pid": os.getpid(),
            "isolation_layers": None if isolation_layers is None else list(isolation_layers),
        }
        # Replace, never rewrite in place: the GUI must not read half a file. No fsync:
        # a beat lost in a crash is exactly what "offline" should show.
        fd, name = tempfile.mkstemp(prefix=".heartbeat.", dir=self.path.parent)
        temporary = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
            temporary.replace(self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


class HeartbeatThread(threading.Thread):
    def __init__(self, heartbeat: NodeHeartbeat, layers: list[str], interval_s: float) -> None:
        super().__init__(name="node-heartbeat", daemon=True)
        self._heartbeat = heartbeat
        self._layers = layers
        self._interval_s = interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            with contextlib.suppress(OSError):  # a full disk must not kill the daemon
                self._heartbeat.beat(self._layers)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=self._interval_s + 1)
        with contextlib.suppress(OSError):
            self._heartbeat.stopped()
