"""The demo experiment: federated logistic regression on the breast-cancer table.

``run_demo_experiment`` is shared by ``fedward demo`` (a local federation on loopback) and
``fedward lab run`` (the same experiment through WireGuard, from the lab's researcher).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fedward.demo.data import SplitTable, breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment, FedAvg
from fedward.researcher.federation import Federation
from fedward.researcher.history import RoundRecord

TAGS = ["breast-cancer", "demo"]
METRIC = "local_accuracy"


def demo_training_args() -> dict[str, object]:
    return {"epochs": 5, "batch_size": 16, "optimizer_args": {"lr": 0.01}, "test_ratio": 0.2}


def format_round(record: RoundRecord, node_ids: list[str], metric: str = METRIC) -> str:
    cells = []
    for node_id in node_ids:
        result = record.nodes.get(node_id)
        if result is None or result.status != "ok":
            cells.append(f"{(result.status if result else '-'):>9}")
        else:
            cells.append(f"{result.metrics.get(metric, float('nan')):9.4f}")
    weighted = record.metrics.get(metric, float("nan"))
    return (
        f"{record.round_index + 1:>5}  " + "  ".join(cells) + f"  {weighted:9.4f}  "
        f"{record.duration_s:7.2f}"
    )


def run_demo_experiment(
    federation: Federation,
    node_ids: list[str],
    split: SplitTable,
    *,
    rounds: int,
    echo: Callable[[str], None] = print,
    round_timeout_s: float = 60.0,
    min_replies: int = 1,
) -> float:
    """Run the rounds, print a row per round; return the held-out accuracy of the global model."""
    echo(f"\nvalidation accuracy per node after local training ({METRIC}):")
    echo("round  " + "  ".join(f"{n:>9}" for n in node_ids) + "   weighted  seconds")
    experiment = Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        rounds=rounds,
        aggregator=FedAvg(),
        nodes=node_ids,
        min_replies=min_replies,
        round_timeout_s=round_timeout_s,
        federation=federation,
        progress=False,  # the demo prints its own table
        on_round=lambda record: echo(format_round(record, node_ids)),
    )
    experiment.run()
    metrics = SGDClassifierPlan(experiment.model_args).evaluate(
        experiment.aggregated_params(), split.test_x, split.test_y, ["accuracy"]
    )
    return float(metrics["accuracy"])


def run_breast_cancer_demo(
    workdir: Path,
    *,
    n_nodes: int = 3,
    rounds: int = 5,
    embedded_broker: bool | None = None,
    echo: Callable[[str], None] = print,
) -> float:
    """Start a local federation in ``workdir``, run the demo; the held-out accuracy."""
    node_ids = [f"node{i + 1}" for i in range(n_nodes)]
    split = breast_cancer_split(workdir / "data", n_nodes)
    with LocalFederation(workdir, node_ids=node_ids, embedded_broker=embedded_broker) as local:
        assert local.broker is not None
        kind = "embedded broker" if local.broker.embedded else "Mosquitto"
        broker = f"{local.broker.host}:{local.broker.port}"
        echo(f"{kind} on {broker}, upload server on {local.uploads_url}")
        for node_id, path in zip(node_ids, split.node_files, strict=True):
            local.add_dataset(
                node_id,
                data_type="csv",
                path=path,
                name="breast cancer (Wisconsin)",
                tags=TAGS,
                description="scikit-learn's breast-cancer table, one hospital's share",
            )
        local.start_nodes()
        echo(f"{n_nodes} nodes online: {', '.join(node_ids)}")
        return run_demo_experiment(local.researcher(), node_ids, split, rounds=rounds, echo=echo)
