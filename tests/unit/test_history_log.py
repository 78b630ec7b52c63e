"""The history encoded once per record, and spliced into ``state.json`` byte for byte as
``json.dumps(document, indent=1)`` wrote it before (``history_log``)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedward.researcher import experiment_state
from fedward.researcher.checkpoint import FORMAT, VERSION, read_checkpoint
from fedward.researcher.experiment import Experiment
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.history_log import EncodedList, HistoryLog, dumps_state
from fedward.researcher.selection import rng_state

from .researcher_fake_node import NodeBehaviour, add
from .test_selection import Harness


def record(index: int, *, epsilon: float | None = None) -> RoundRecord:
    nodes = {
        "node-a": NodeRound(
            "node-a",
            "ok",
            sample_count=10,
            metrics={"local_loss": 0.5 / (index + 1), "global_loss": math.nan},
            timings={"train_s": 0.25},
            duration_s=1.5,
            job_id=f"job-{index}",
            threads=2,
        ),
        "nöde-b": NodeRound(
            "nöde-b", "failed", error='refused: "shape"\nsecond line', error_code="E1"
        ),
        "node-c": NodeRound("node-c", "offline"),
    }
    if epsilon is None:
        return RoundRecord(index, nodes, duration_s=2.0 + index)
    return RoundRecord(index, nodes, 2.0, epsilon, 1e-5, {"node-a": epsilon, "nöde-b": 0.0})


def document(history: Any) -> dict[str, Any]:
    """A state.json document with the history where it sits: among other values."""
    return {
        "format": FORMAT,
        "rounds_done": 3,
        "tags": ["a", "ü"],
        "nodes": None,
        "aggregator": {"name": "fedavg", "config": {}, "state": {}},
        "datasets": {"node-a": {"shape": [3, 4], "dtypes": {}}},
        "history": history,
        "privacy": {"differential_privacy": None, "max_epsilon": 1.5},
    }


@pytest.mark.parametrize("rounds", [0, 1, 4])
def test_a_spliced_history_is_written_as_json_dumps_wrote_it(rounds: int) -> None:
    history = [record(i, epsilon=0.1 * i if i % 2 else None) for i in range(rounds)]
    expected = document([r.to_json() for r in history])
    written = dumps_state(document(HistoryLog().sync(history)))
    assert written == json.dumps(expected, indent=1)
    parsed = json.loads(written)
    assert [RoundRecord.from_json(r).nodes.keys() for r in parsed["history"]] == [
        r.nodes.keys() for r in history
    ]
    assert dumps_state({}) == json.dumps({}, indent=1)


def test_each_record_is_encoded_once_and_a_snapshot_keeps_its_rounds() -> None:
    history = [record(0), record(1)]
    log = HistoryLog()
    first = log.sync(history)
    first_text = first.json_text()
    history[0].duration_s = 99.0  # changed after it was encoded: the log keeps its text
    history.append(record(2))
    second = log.sync(history)
    assert first.json_text() == first_text  # the earlier checkpoint's history, unchanged
    assert second.count == 3 and '"duration_s": 99.0' not in second.json_text()
    newest = json.loads(second.json_text())[2]
    assert json.dumps(newest) == json.dumps(record(2).to_json())  # NaN != NaN: as text


def test_a_replaced_or_shortened_history_is_encoded_again() -> None:
    log = HistoryLog()
    history = [record(0), record(1)]
    log.sync(history)
    resumed = [record(0), record(1, epsilon=0.5)]  # a new list: a resumed experiment
    assert json.loads(log.sync(resumed).json_text())[1]["epsilon"] == 0.5
    resumed.pop()
    assert log.sync(resumed).count == 1
    resumed.append(record(7))  # the same length as before, another last record
    assert json.loads(log.sync(resumed).json_text())[1]["round_index"] == 7
    assert EncodedList([], 0).json_text() == "[]"


# --- what an experiment writes -------------------------------------------------------------


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    setup = Harness(state_dir=tmp_path / "researcher")
    for index, step in enumerate([0.5, 1.0, 2.0], start=1):
        setup.add_node(f"node{index}", NodeBehaviour(train=add(step), sample_count=10 * index))
    yield setup
    setup.close()


def old_state_json(experiment: Experiment, checkpoint: Path) -> str:
    """The state.json the old writer made: ``to_json``'s whole state, ``json.dumps``ed."""
    saved = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    _, aggregator_data = experiment.aggregator.state()
    document = {
        "format": FORMAT,
        "version": VERSION,
        "rounds_done": len(experiment.history),
        "params_sha256": saved["params_sha256"],
        **experiment_state.to_json(experiment, aggregator_data, rng_state(experiment._rng)),
    }
    return json.dumps(document, indent=1)


def test_an_experiment_writes_and_resumes_the_state_the_old_writer_wrote(
    harness: Harness,
) -> None:
    experiment = harness.experiment(rounds=3)
    for _ in range(3):
        experiment.run_once()
        checkpoint = experiment.last_checkpoint
        assert checkpoint is not None
        written = (checkpoint / "state.json").read_text(encoding="utf-8")
        assert written == old_state_json(experiment, checkpoint)
        assert len(json.loads(written)["history"]) == len(experiment.history)

    resumed = Experiment.load_checkpoint(
        "latest", federation=harness.federation, rounds=4, progress=False
    )
    assert [r.to_json() for r in resumed.history] == [r.to_json() for r in experiment.history]
    resumed.run_once()
    checkpoint = resumed.last_checkpoint
    assert checkpoint is not None and checkpoint.name == "round-0004"
    written = (checkpoint / "state.json").read_text(encoding="utf-8")
    assert written == old_state_json(resumed, checkpoint)
    assert (
        read_checkpoint(checkpoint).state["history"][:3]
        == json.loads(
            (checkpoint.parent / "round-0003" / "state.json").read_text(encoding="utf-8")
        )["history"]
    )
