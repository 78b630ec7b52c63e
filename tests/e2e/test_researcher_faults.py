"""A hospital lost mid-experiment: four node processes, one killed during round 2 of 5.

The victim is first paused (SIGSTOP) at the end of round 1, so it cannot answer round 2's
request however fast the others are; once another node's round-2 update is in (so the
request certainly went out), it is killed (SIGKILL). Its broker connection drops, the
broker publishes its will, and the researcher drops it from the round at once instead of
waiting out the deadline.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from fedward.core.messages import ScalarEvent
from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment
from fedward.researcher.history import RoundRecord

from .conftest import breast_cancer_federation

TAGS = ["breast-cancer", "faults"]
NODES = ["node1", "node2", "node3", "node4"]
VICTIM = "node3"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("faults")
    with breast_cancer_federation(workdir, NODES, TAGS) as fed:
        yield fed


class KillDuringRoundTwo:
    """An experiment observer: pause the victim after round 1, kill it inside round 2."""

    def __init__(self, fed: LocalFederation) -> None:
        self.fed = fed
        self.killed_at: float | None = None

    def _pid(self) -> int:
        process = self.fed.nodes[VICTIM].process
        assert process is not None
        return process.pid

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        pass

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        if round_index == 1 and node_id != VICTIM and status == "ok" and self.killed_at is None:
            self.killed_at = time.monotonic()
            self.fed.stop_node(VICTIM, kill=True)

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        pass

    def round_finished(self, record: RoundRecord) -> None:
        if record.round_index == 0:
            os.kill(self._pid(), signal.SIGSTOP)

    def close(self) -> None:
        pass


@pytest.mark.timeout(240)
def test_a_node_killed_during_round_two_is_dropped_and_the_experiment_goes_on(
    federation: LocalFederation, tmp_path: Path
) -> None:
    split = federation.split  # type: ignore[attr-defined]
    killer = KillDuringRoundTwo(federation)
    experiment = Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        rounds=5,
        min_replies=3,
        round_timeout_s=120,
        federation=federation.researcher(),
        state_dir=tmp_path,
        observers=[killer],
    )
    history = experiment.run()

    assert killer.killed_at is not None
    assert len(history) == 5
    assert history[0].succeeded == NODES
    second = history[1]
    assert second.succeeded == ["node1", "node2", "node4"]
    assert second.dropped == [VICTIM]
    assert second.nodes[VICTIM].status == "failed"
    assert second.nodes[VICTIM].error_code == "node_offline"
    # Dropped as soon as its will arrived, not at the 120 s deadline.
    assert second.duration_s < 60
    for record in history[2:]:
        assert record.succeeded == ["node1", "node2", "node4"]
        assert record.nodes[VICTIM].status == "offline"
    for record in history:
        print(
            f"round {record.round_index + 1}: ok {record.succeeded} dropped "
            f"{[(n, record.nodes[n].status) for n in record.dropped]} "
            f"in {record.duration_s:.2f} s"
        )
    metrics = SGDClassifierPlan(experiment.model_args).evaluate(
        experiment.aggregated_params(), split.test_x, split.test_y, ["accuracy"]
    )
    print(f"held-out accuracy with a node lost in round 2: {metrics['accuracy']:.4f}")
    assert metrics["accuracy"] >= 0.9
    # The checkpoint's history names the dropped node too.
    saved = (experiment.last_checkpoint or tmp_path) / "state.json"
    assert '"node_offline"' in saved.read_text()
