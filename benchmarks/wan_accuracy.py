"""Final accuracy per update codec: the digits and the breast-cancer experiments.

A codec changes the numbers that travel, not how fast a link is, so accuracy is measured
on a loopback federation (``LocalFederation``: the same node processes, upload server
and broker as the lab, minus WireGuard), each experiment seeded the same way for every
codec. Digits: ``TorchCNNPlan`` on sklearn's 8x8 digits (as ``notebooks/101``), 3 nodes,
4 rounds. Breast cancer: the demo's ``SGDClassifierPlan``, 3 nodes, 5 rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.data import breast_cancer_split, digits_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.learning.plans.torch_cnn import TorchCNNPlan
from fedward.researcher import Experiment, FedAvg

NODES = ["node1", "node2", "node3"]


def _run(fed: LocalFederation, tags: list[str], codec: str, **settings: Any) -> Experiment:
    experiment = Experiment(
        tags=tags,
        aggregator=FedAvg(),
        round_timeout_s=300,
        federation=fed.researcher(),
        progress=False,
        checkpoints=False,
        seed=0,
        update_codec=codec,
        **settings,
    )
    experiment.run()
    return experiment


def measure_accuracy(workdir: Path, codecs: Sequence[str]) -> dict[str, Any]:
    """{experiment: {codec: held-out accuracy}}, every codec on the same federation."""
    digit_files, digit_x, digit_y = digits_split(workdir / "data" / "digits", NODES)
    cancer = breast_cancer_split(workdir / "data" / "cancer", len(NODES))
    fed = LocalFederation(workdir / "federation", node_ids=NODES, approval_required=False)
    results: dict[str, Any] = {"digits": {}, "breast_cancer": {}}
    try:
        fed.start()
        for index, node_id in enumerate(NODES):
            fed.add_dataset(node_id, data_type="csv", path=digit_files[node_id],
                            name="digits", tags=["digits", "wan"])  # fmt: skip
            fed.add_dataset(node_id, data_type="csv", path=cancer.node_files[index],
                            name="bc", tags=["breast-cancer", "wan"])  # fmt: skip
        fed.start_nodes()
        for codec in codecs:
            digits = _run(
                fed, ["digits", "wan"], codec, training_plan=TorchCNNPlan, rounds=4,
                model_args={"n_classes": 10},
                training_args={"batch_size": 32, "epochs": 1, "optimizer_args": {"lr": 3e-3},
                               "test_ratio": 0.1},
            )  # fmt: skip
            plan = TorchCNNPlan(digits.model_args)
            results["digits"][codec] = plan.evaluate(
                digits.aggregated_params(), digit_x, digit_y, ["accuracy"]
            )["accuracy"]
            bc = _run(
                fed, ["breast-cancer", "wan"], codec, training_plan=SGDClassifierPlan, rounds=5,
                model_args={"n_features": len(cancer.feature_names), "classes": cancer.classes},
                training_args=demo_training_args(),
            )  # fmt: skip
            results["breast_cancer"][codec] = SGDClassifierPlan(bc.model_args).evaluate(
                bc.aggregated_params(), cancer.test_x, cancer.test_y, ["accuracy"]
            )["accuracy"]
    finally:
        fed.stop()
    return results
