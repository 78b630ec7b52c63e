"""SCAFFOLD end to end: control variates travel as extra blobs to real node processes."""

from __future__ import annotations

from pathlib import Path

from fedward.learning.plans.torch_mlp import TorchMLPPlan
from fedward.researcher import Experiment
from fedward.researcher.aggregators import Scaffold

from .conftest import breast_cancer_federation

NODES = ["node1", "node2"]
TAGS = ["breast-cancer", "scaffold"]


def test_scaffold_rounds_complete_on_real_nodes_and_learn(tmp_path: Path) -> None:
    with breast_cancer_federation(tmp_path, NODES, TAGS) as federation:
        split = federation.split  # type: ignore[attr-defined]
        experiment = Experiment(
            tags=TAGS,
            training_plan=TorchMLPPlan,
            model_args={"n_features": 30, "classes": [0, 1], "hidden": [16]},
            training_args={"epochs": 2, "batch_size": 16, "optimizer_args": {"lr": 0.05}},
            rounds=3,
            aggregator=Scaffold(),
            min_replies=len(NODES),
            round_timeout_s=120,
            federation=federation.researcher(),
            progress=False,
            checkpoints=False,
        )
        history = experiment.run()

    assert [record.succeeded for record in history] == [NODES] * 3
    accuracy = TorchMLPPlan(experiment.model_args).evaluate(
        experiment.aggregated_params(), split.test_x.astype("float32"), split.test_y
    )["accuracy"]
    print(f"SCAFFOLD, 3 rounds through 2 node processes: held-out accuracy {accuracy:.4f}")
    assert accuracy >= 0.85  # an untrained model is at about 0.6 (the majority class)
