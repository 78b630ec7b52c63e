"""Nodes and researcher survive a restarted broker and a restarted upload server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment

from .conftest import breast_cancer_federation

TAGS = ["breast-cancer", "resilience"]
NODES = ["node1", "node2"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("resilience")
    with breast_cancer_federation(workdir, NODES, TAGS) as fed:
        yield fed


def _experiment(fed: LocalFederation) -> Experiment:
    return Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": 30, "classes": [0, 1]},
        training_args=demo_training_args(),
        rounds=2,
        min_replies=len(NODES),
        round_timeout_s=60,
        federation=fed.researcher(),
    )


def _wait_until_all_answer_ping(fed: LocalFederation, timeout_s: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if sorted(fed.researcher().ping(timeout_s=1.0)) == NODES:
            return time.monotonic() - started
    raise AssertionError(f"nodes did not answer within {timeout_s} s")


def test_a_restarted_broker_loses_no_node_and_the_experiment_goes_on(
    federation: LocalFederation,
) -> None:
    experiment = _experiment(federation)
    assert experiment.run_once().succeeded == NODES
    assert federation.broker is not None
    federation.broker.restart()

    waited = _wait_until_all_answer_ping(federation)
    print(f"nodes answered again {waited:.1f} s after the broker restart")
    # Presence is re-asserted by the nodes: the restarted broker knows them as online.
    assert set(NODES) <= set(federation.researcher().online_nodes())
    assert experiment.run_once().succeeded == NODES


def test_a_restarted_upload_server_keeps_its_blobs_and_the_experiment_goes_on(
    federation: LocalFederation,
) -> None:
    experiment = _experiment(federation)
    assert experiment.run_once().succeeded == NODES
    federation.restart_uploads()
    assert experiment.run_once().succeeded == NODES
