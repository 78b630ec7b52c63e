"""SCAFFOLD end to end: control variates travel as extra blobs to real node processes."""

from __future__ import annotations

from pathlib import Path

from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.torch_mlp import TorchMLPPlan
from fedward.researcher import Experiment
from fedward.researcher.aggregators import Scaffold

NODES = ["node1", "node2"]
TAGS = ["breast-cancer", "scaffold"]


def test_scaffold_rounds_complete_on_real_nodes_and_learn(tmp_path: Path) -> None:
    split = breast_cancer_split(tmp_path / "data", len(NODES))
    with LocalFederation(tmp_path, node_ids=NODES) as federation:
        for node_id, path in zip(NODES, split.node_files, strict=True):
            federation.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=TAGS)
        federation.start_nodes()
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
