"""Results for analysis: the history as a DataFrame, any past round's parameters, plots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedward.core.params import Params
from fedward.errors import NotFound, ValidationError
from fedward.researcher.experiment import Experiment
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.plot import history_figure

from .researcher_fake_node import NodeBehaviour, add
from .test_selection import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    setup = Harness(state_dir=tmp_path / "researcher")
    setup.add_node("node1", NodeBehaviour(train=add(1.0), sample_count=10, metrics={"acc": 0.5}))
    setup.add_node("node2", NodeBehaviour(train=add(3.0), sample_count=30, metrics={"acc": 0.9}))
    yield setup
    setup.close()


def test_the_history_is_a_dataframe_per_node_and_per_round(harness: Harness) -> None:
    experiment = harness.experiment(rounds=3)
    experiment.run()
    frame = experiment.metrics_frame()
    assert list(frame.columns[:5]) == ["round", "node_id", "status", "sample_count", "acc"]
    assert frame["round"].tolist() == [1, 1, 2, 2, 3, 3]  # counted as the progress line does
    assert frame["node_id"].tolist() == ["node1", "node2"] * 3
    assert (frame["status"] == "ok").all()
    assert frame.groupby("node_id")["acc"].mean().to_dict() == {"node1": 0.5, "node2": 0.9}
    rounds = experiment.metrics_frame(per_node=False)
    assert rounds["round"].tolist() == [1, 2, 3]
    assert rounds["acc"].tolist() == pytest.approx([(10 * 0.5 + 30 * 0.9) / 40] * 3)
    assert rounds["succeeded"].tolist() == [2, 2, 2]


def test_the_parameters_of_any_past_round_come_from_its_checkpoint(harness: Harness) -> None:
    seen: list[Params] = []
    experiments: list[Experiment] = []
    experiment = harness.experiment(
        rounds=3, seed=4, on_round=lambda _: seen.append(experiments[0].aggregated_params())
    )
    experiments.append(experiment)
    experiment.run()
    for number, expected in enumerate(seen, start=1):
        got = experiment.aggregated_params(round=number)
        assert all(got[k].tobytes() == expected[k].tobytes() for k in expected)
    initial = experiment.aggregated_params(round=0)
    np.testing.assert_array_equal(initial["offset"], [4.0, 4.0])  # init_params(seed)
    with pytest.raises(ValidationError, match=r"rounds 0 .* to 3"):
        experiment.aggregated_params(round=4)


def test_a_pruned_round_says_why_it_is_gone(harness: Harness) -> None:
    experiment = harness.experiment(rounds=3, keep_checkpoints=1)
    experiment.run()
    with pytest.raises(NotFound, match="keep_checkpoints"):
        experiment.aggregated_params(round=1)


def record(round_index: int, **metrics: float) -> RoundRecord:
    node = NodeRound("node1", "ok", sample_count=1, metrics=dict(metrics))
    return RoundRecord(round_index, {"node1": node})


def test_plots_put_the_loss_first_on_integer_rounds_and_can_skip_the_first_round() -> None:
    history = [
        record(r, global_accuracy=0.1 if r == 0 else 0.9, train_loss=1.0 / (r + 1))
        for r in range(3)
    ]
    figure = history_figure(history)
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["train_loss", "global_accuracy"]
    figure.canvas.draw()
    for axes in figure.axes:
        ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks), ticks
    skipped = history_figure(history, skip_first_round=True)
    rounds_drawn = {x for line in skipped.axes[1].get_lines() for x in line.get_xdata()}
    assert rounds_drawn == {2, 3}
