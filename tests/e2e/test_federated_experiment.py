"""A researcher and three node processes, over Mosquitto and the upload server."""

from __future__ import annotations

from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment, FedAvg

from .conftest import TAGS


def test_three_nodes_train_logistic_regression_to_high_held_out_accuracy(
    federation: LocalFederation,
) -> None:
    split = federation.split  # type: ignore[attr-defined]
    experiment = Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        rounds=5,
        aggregator=FedAvg(),
        round_timeout_s=60,
        federation=federation.researcher(),
    )
    history = experiment.run()

    assert len(history) == 5
    for record in history:
        assert record.succeeded == ["node1", "node2", "node3"]
        assert all(r.sample_count > 0 for r in record.nodes.values())
        assert "local_accuracy" in record.metrics
    metrics = SGDClassifierPlan(experiment.model_args).evaluate(
        experiment.aggregated_params(), split.test_x, split.test_y, ["accuracy"]
    )
    print(f"held-out accuracy after 5 rounds: {metrics['accuracy']:.4f}")
    assert metrics["accuracy"] >= 0.93


def test_search_finds_datasets_by_tags_without_paths(federation: LocalFederation) -> None:
    found = federation.researcher().search(TAGS)
    assert sorted(found) == ["node1", "node2", "node3"]
    for datasets in found.values():
        encoded = repr(datasets)
        assert "/" not in encoded.replace("n/a", "")  # no path leaks into summaries
    assert federation.researcher().search(["no-such-tag"]) == {}


def test_every_node_answers_ping(federation: LocalFederation) -> None:
    assert sorted(federation.researcher().ping()) == ["node1", "node2", "node3"]
