"""Checkpoints: written atomically every round, found again, and resumed bit for bit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import NotFound, PlanError, ValidationError
from fedward.learning.plans.sklearn_perceptron import PerceptronPlan
from fedward.researcher.aggregators import FedAdam
from fedward.researcher.checkpoint import (
    locate_checkpoint,
    read_checkpoint,
    round_dirs,
    save_checkpoint,
)
from fedward.researcher.experiment import Experiment
from fedward.researcher.selection import RandomFraction

from .researcher_fake_node import NodeBehaviour, add
from .test_selection import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    setup = Harness(state_dir=tmp_path / "researcher")
    for index, step in enumerate([0.5, 1.0, 2.0, 4.0], start=1):
        setup.add_node(f"node{index}", NodeBehaviour(train=add(step), sample_count=10 * index))
    yield setup
    setup.close()


PARAMS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}


# --- the files ------------------------------------------------------------------------------


def test_a_checkpoint_holds_params_aggregator_tensors_and_state(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 2, PARAMS, {"m": {"w": np.ones(3)}}, {"answer": 42})
    assert path == tmp_path / "round-0002"
    assert sorted(p.name for p in path.iterdir()) == [
        "aggregator",
        "params.safetensors",
        "state.json",
    ]
    checkpoint = read_checkpoint(path)
    np.testing.assert_array_equal(checkpoint.params["w"], PARAMS["w"])
    assert checkpoint.params["w"].dtype == np.float32
    np.testing.assert_array_equal(checkpoint.aggregator_tensors["m"]["w"], np.ones(3))
    assert checkpoint.rounds_done == 2
    assert checkpoint.state["answer"] == 42


def test_a_failed_write_leaves_neither_a_checkpoint_nor_its_scratch(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, PARAMS, {}, {})
    with pytest.raises(ValidationError):
        save_checkpoint(tmp_path, 2, PARAMS, {"../escape": PARAMS}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-0001"]
    assert locate_checkpoint(tmp_path, None) == tmp_path / "round-0001"


def test_folders_without_a_complete_state_are_not_checkpoints(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, PARAMS, {}, {})
    (tmp_path / "round-0002").mkdir()  # as a crash before the rename could never leave it
    (tmp_path / ".round-0003.partial-99").mkdir()
    assert round_dirs(tmp_path) == [tmp_path / "round-0001"]


def test_keep_prunes_older_rounds_and_saving_a_round_again_replaces_it(tmp_path: Path) -> None:
    for rounds_done in range(1, 5):
        save_checkpoint(tmp_path, rounds_done, PARAMS, {}, {"n": rounds_done}, keep=2)
    assert [p.name for p in round_dirs(tmp_path)] == ["round-0003", "round-0004"]
    save_checkpoint(tmp_path, 4, PARAMS, {}, {"n": "again"}, keep=2)
    assert read_checkpoint(tmp_path / "round-0004").state["n"] == "again"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_latest_without_an_experiment_id_is_the_newest_checkpoint_of_any(tmp_path: Path) -> None:
    older = save_checkpoint(tmp_path / "experiments" / "exp-a", 3, PARAMS, {}, {})
    newer = save_checkpoint(tmp_path / "experiments" / "exp-b", 1, PARAMS, {}, {})
    assert locate_checkpoint("latest", tmp_path) == newer
    assert locate_checkpoint("latest", tmp_path, "exp-a") == older
    assert locate_checkpoint(tmp_path / "experiments" / "exp-a", None) == older
    with pytest.raises(NotFound, match="no checkpoint of experiment exp-c"):
        locate_checkpoint("latest", tmp_path, "exp-c")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 1, PARAMS, {}, {})
    (path / "state.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValidationError, match="not a fedward experiment checkpoint"):
        read_checkpoint(path)


# --- resuming an experiment ---------------------------------------------------------------


def settings() -> dict[str, object]:
    return {
        "rounds": 5,
        "aggregator": FedAdam(lr=0.3, tau=0.01),
        "node_selection": RandomFraction(0.5),
        "seed": 5,
    }


def test_an_experiment_resumed_after_round_two_ends_bit_for_bit_like_an_uninterrupted_one(
    harness: Harness, tmp_path: Path
) -> None:
    straight = harness.experiment(experiment_id="exp-straight", **settings())
    straight.run()

    interrupted = harness.experiment(experiment_id="exp-resumed", **settings())
    interrupted.run_once()
    interrupted.run_once()
    harness.federation.close()  # the researcher process is gone
    assert interrupted.last_checkpoint is not None
    assert interrupted.last_checkpoint.name == "round-0002"

    harness.federation = harness.connect()
    harness.wait_online()
    resumed = Experiment.load_checkpoint(
        "latest", federation=harness.federation, experiment_id="exp-resumed", progress=False
    )
    assert resumed.round_index == 2
    assert isinstance(resumed.aggregator, FedAdam)
    resumed.run()

    final, expected = resumed.aggregated_params(), straight.aggregated_params()
    for name in expected:
        assert final[name].tobytes() == expected[name].tobytes()
    assert [r.succeeded for r in resumed.history] == [r.succeeded for r in straight.history]
    assert [p.name for p in round_dirs(resumed.checkpoint_dir() or Path())] == [
        f"round-{n:04d}" for n in range(1, 6)
    ]


def test_resume_finds_the_state_folder_from_the_federation(harness: Harness) -> None:
    harness.experiment(rounds=2).run_once()
    resumed = Experiment.load_checkpoint("latest", federation=harness.federation, progress=False)
    assert (resumed.experiment_id, resumed.round_index, resumed.rounds) == ("exp-test", 1, 2)
    assert resumed.run()[-1].round_index == 1


def test_resume_refuses_a_plan_whose_code_changed(harness: Harness) -> None:
    harness.experiment(rounds=2).run_once()
    with pytest.raises(PlanError, match="changed since the checkpoint"):
        Experiment.load_checkpoint(
            "latest",
            federation=harness.federation,
            training_plan=PerceptronPlan,  # other code than saved
        )


def test_a_custom_selection_must_be_passed_again(harness: Harness) -> None:
    harness.experiment(rounds=2, node_selection=lambda c, r, g: c[:1]).run_once()
    with pytest.raises(ValidationError, match="pass node_selection="):
        Experiment.load_checkpoint("latest", federation=harness.federation)
    resumed = Experiment.load_checkpoint(
        "latest",
        federation=harness.federation,
        node_selection=lambda c, r, g: c[-1:],
        progress=False,
    )
    assert resumed.run()[-1].succeeded == ["node4"]


def test_resume_can_extend_the_rounds_but_not_change_the_training(harness: Harness) -> None:
    harness.experiment(rounds=1).run()
    resumed = Experiment.load_checkpoint(
        "latest", federation=harness.federation, rounds=3, progress=False
    )
    assert len(resumed.run()) == 3
    with pytest.raises(ValidationError, match="cannot change seed"):
        Experiment.load_checkpoint("latest", federation=harness.federation, seed=1)


def test_without_a_state_folder_nothing_is_saved(tmp_path: Path) -> None:
    setup = Harness(state_dir=None)
    try:
        setup.add_node("node1")
        experiment = setup.experiment()
        experiment.run()
        assert experiment.checkpoint_dir() is None and experiment.last_checkpoint is None
    finally:
        setup.close()
