"""Epsilon after each round reaches the progress line and TensorBoard."""

from __future__ import annotations

import io
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.progress import ProgressDisplay
from fedward.researcher.tensorboard import TensorBoardLog


def record() -> RoundRecord:
    nodes = {n: NodeRound(n, "ok", sample_count=1) for n in ("a", "b")}
    return RoundRecord(0, nodes, 1.0, epsilon=2.5, delta=1e-5, node_epsilon={"a": 2.5, "b": 1.5})


def test_the_progress_summary_shows_epsilon_and_delta() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(3, stream, live=False)
    display.round_started(0, ["a", "b"])
    display.round_finished(record())
    assert "epsilon 2.5 (delta 1e-05)" in stream.getvalue()


def test_tensorboard_has_epsilon_per_node_and_for_the_experiment(tmp_path: Path) -> None:
    log = TensorBoardLog(tmp_path, "exp-1")
    log.round_finished(record())
    log.close()
    runs = {p.name: p for p in tmp_path.rglob("*") if p.is_dir() and any(p.glob("events.*"))}

    def series(run: str) -> list[tuple[int, float]]:
        accumulator = EventAccumulator(str(runs[run]))
        accumulator.Reload()
        return [(e.step, e.value) for e in accumulator.Scalars("privacy/epsilon")]

    assert series("aggregate") == [(1, 2.5)]
    assert series("a") == [(1, 2.5)] and series("b") == [(1, 1.5)]
