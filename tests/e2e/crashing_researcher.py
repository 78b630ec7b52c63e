"""A researcher process that kills itself (SIGKILL: no cleanup, no finally) at one chosen
point of round 2 of 3. Run as ``python -m tests.e2e.crashing_researcher CONFIG
EXPERIMENT_ID KILL_POINT`` from the repository root; ``KILL_POINTS`` lists the points."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedward.core.messages import ScalarEvent
from fedward.core.params import Params
from fedward.researcher import Experiment, FedAvg
from fedward.researcher.aggregators.base import TensorGroups
from fedward.researcher.connect import connect
from fedward.researcher.history import RoundRecord
from tests.e2e.slow_plan import SlowSGDPlan

CRASH_ROUND = 1
KILL_POINTS = (
    "before_upload",  # the round began: nothing uploaded or sent yet
    "during_training",  # the requests are out, the nodes train, no answer yet
    "between_replies",  # node1's update is in and folded, the others still train
    "during_aggregation",  # every update is folded, the new global model not yet made
    "during_checkpoint",  # the round is aggregated, its checkpoint being gathered
    "after_checkpoint",  # the checkpoint is on disk, the round not yet reported
)
SETTINGS: dict[str, Any] = {
    "tags": ["breast-cancer", "kill"],
    "model_args": {"n_features": 30, "classes": [0, 1]},
    "training_args": {"epochs": 2, "batch_size": 16},
    "rounds": 3,
    "seed": 11,
    "round_timeout_s": 60,
    "progress": False,
}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Killer:
    """An observer that dies at ``point`` (the points it can see)."""

    def __init__(self, point: str) -> None:
        self.point = point

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        if round_index == CRASH_ROUND and self.point == "before_upload":
            die()

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        if (round_index, node_id, status, self.point) == (1, "node1", "ok", "between_replies"):
            die()

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        if event.round_index == CRASH_ROUND and self.point == "during_training":
            die()

    def round_finished(self, record: RoundRecord) -> None:
        pass

    def close(self) -> None:
        pass


class KillingFedAvg(FedAvg):
    """FedAvg that dies when round 2's parameters are made, or its state is saved."""

    def __init__(self, point: str) -> None:
        super().__init__()
        self.point = point
        self.round_index = -1

    def begin_round(self, global_params: Params, round_index: int, population: Any = None) -> None:
        self.round_index = round_index
        super().begin_round(global_params, round_index, population)

    def finish(self) -> Params:
        if self.round_index == CRASH_ROUND and self.point == "during_aggregation":
            die()
        return super().finish()

    def state(self) -> tuple[TensorGroups, dict[str, Any]]:
        if self.round_index == CRASH_ROUND and self.point == "during_checkpoint":
            die()
        return super().state()


def main() -> None:
    config, experiment_id, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    if point not in KILL_POINTS:
        raise SystemExit(f"unknown kill point {point!r}")

    def after_checkpoint(record: RoundRecord) -> None:
        if record.round_index == CRASH_ROUND and point == "after_checkpoint":
            die()

    Experiment(
        training_plan=SlowSGDPlan,
        aggregator=KillingFedAvg(point),
        federation=connect(config_file=config),
        experiment_id=experiment_id,
        observers=[Killer(point)],
        on_round=after_checkpoint,
        **SETTINGS,
    ).run()


if __name__ == "__main__":
    main()
