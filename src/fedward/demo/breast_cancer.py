"""The demo experiment: federated logistic regression on the breast-cancer table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment, FedAvg

TAGS = ["breast-cancer", "demo"]
METRIC = "local_accuracy"


def demo_training_args() -> dict[str, object]:
    return {"epochs": 5, "batch_size": 16, "learning_rate": 0.01, "test_ratio": 0.2}


def run_breast_cancer_demo(
    workdir: Path,
    *,
    n_nodes: int = 3,
    rounds: int = 5,
    embedded_broker: bool | None = None,
    echo: Callable[[str], None] = print,
) -> float:
    """Run the demo in ``workdir``; return the global model's held-out accuracy."""
    from fedward.demo.cli import format_round

    node_ids = [f"node{i + 1}" for i in range(n_nodes)]
    split = breast_cancer_split(workdir / "data", n_nodes)
    with LocalFederation(workdir, node_ids=node_ids, embedded_broker=embedded_broker) as federation:
        broker_kind = (
            "embedded broker" if federation.broker and federation.broker.embedded else "Mosquitto"
        )
        echo(
            f"{broker_kind} on {federation.broker.host}:{federation.broker.port}, "  # type: ignore[union-attr]
            f"upload server on {federation.uploads_url}"
        )
        for node_id, path in zip(node_ids, split.node_files, strict=True):
            federation.add_dataset(
                node_id,
                data_type="csv",
                path=path,
                name="breast cancer (Wisconsin)",
                tags=TAGS,
                description="scikit-learn's breast-cancer table, one hospital's share",
            )
        federation.start_nodes()
        echo(f"{n_nodes} nodes online: {', '.join(node_ids)}")
        header = "round  " + "  ".join(f"{n:>9}" for n in node_ids) + "   weighted  seconds"
        echo(f"\nvalidation accuracy per node after local training ({METRIC}):")
        echo(header)
        experiment = Experiment(
            tags=TAGS,
            training_plan=SGDClassifierPlan,
            model_args={"n_features": len(split.feature_names), "classes": split.classes},
            training_args=demo_training_args(),
            rounds=rounds,
            aggregator=FedAvg(),
            round_timeout_s=60,
            federation=federation.researcher(),
            on_round=lambda record: echo(format_round(record, node_ids, METRIC)),
        )
        experiment.run()
        metrics = SGDClassifierPlan(experiment.model_args).evaluate(
            experiment.aggregated_params(), split.test_x, split.test_y, ["accuracy"]
        )
        return float(metrics["accuracy"])
