"""TensorBoard logs of an experiment: ``<logdir>/<experiment id>/<node id>/`` per node.

- ``train_loss`` (and any other scalar a plan reports) streams in live from each node's
  ``ScalarEvent``; its step counts the node's local steps across rounds, so the series of
  a node is continuous from round to round.
- At the end of each round, the metrics each node reported go to its own folder as
  ``round/<metric>`` (step = round number, from 1), and the sample-weighted means to
  ``<logdir>/<experiment id>/aggregate/``.

Open with ``fedward researcher tensorboard`` (or ``tensorboard --logdir runs``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path

from fedward.core.ids import validate_id
from fedward.core.messages import ScalarEvent
from fedward.researcher.history import RoundRecord
from fedward.researcher.tfevents import EventFileWriter

AGGREGATE_RUN = "aggregate"


class TensorBoardLog:
    def __init__(self, logdir: Path | str, experiment_id: str) -> None:
        self.directory = Path(logdir) / validate_id(experiment_id, kind="experiment id")
        self._writers: dict[str, EventFileWriter] = {}
        self._lock = threading.Lock()
        # Per node: the step where each round's local steps start, and the last step seen.
        self._round_base: dict[tuple[str, int], int] = {}
        self._last_step: dict[str, int] = {}

    def writer(self, run: str) -> EventFileWriter:
        with self._lock:
            if run not in self._writers:
                self._writers[run] = EventFileWriter(self.directory / run)
            return self._writers[run]

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        pass

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        pass

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        validate_id(node_id, kind="node id")  # it becomes a folder name
        with self._lock:
            key = (node_id, event.round_index)
            if key not in self._round_base:
                self._round_base[key] = self._last_step.get(node_id, 0)
            step = self._round_base[key] + event.step
            self._last_step[node_id] = max(self._last_step.get(node_id, 0), step)
        self.writer(node_id).add_scalar(event.name, event.value, step)

    def round_finished(self, record: RoundRecord) -> None:
        step = record.round_index + 1
        for node_id, result in sorted(record.nodes.items()):
            if result.status == "ok":
                for name, value in sorted(result.metrics.items()):
                    self.writer(node_id).add_scalar(f"round/{name}", value, step)
        for name, value in sorted(record.metrics.items()):
            self.writer(AGGREGATE_RUN).add_scalar(f"round/{name}", value, step)
        for node_id, spent in sorted(record.node_epsilon.items()):
            if math.isfinite(spent):
                self.writer(node_id).add_scalar("privacy/epsilon", spent, step)
        if record.epsilon is not None and math.isfinite(record.epsilon):
            self.writer(AGGREGATE_RUN).add_scalar("privacy/epsilon", record.epsilon, step)

    def close(self) -> None:
        pass
