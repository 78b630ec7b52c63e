"""Private training on a real federation: Mosquitto with the rendered ACL, the upload
server, three node processes; one of them requires secure aggregation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.local_federation import LocalFederation
from fedward.errors import ProtocolError
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.protocol.params_wire import open_params
from fedward.researcher import Experiment, SecAgg

from .conftest import breast_cancer_federation

TAGS = ["breast-cancer", "private"]
NODES = ["node1", "node2", "node3"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("private")
    policy = "[privacy]\nrequire_secure_aggregation = true\n"
    with breast_cancer_federation(workdir, NODES, TAGS, node_toml={"node1": policy}) as fed:
        yield fed


def experiment(federation: LocalFederation, **options: object) -> Experiment:
    split = federation.split  # type: ignore[attr-defined]
    return Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        round_timeout_s=60,
        federation=federation.researcher(),
        progress=False,
        **options,  # type: ignore[arg-type]
    )


def stored_objects(federation: LocalFederation) -> dict[Path, list[str]]:
    """Every blob the upload server holds, with its readers."""
    data = federation.workdir / "uploads" / "data"
    found = {}
    for path in (data / "objects").glob("*/*"):
        sidecar = data / "readers" / path.parent.name / f"{path.name}.json"
        found[path] = json.loads(sidecar.read_text())["readers"]
    return found


def test_a_node_that_requires_secure_aggregation_refuses_a_plain_round(
    federation: LocalFederation,
) -> None:
    record = experiment(federation).run_once()
    assert record.nodes["node1"].status == "failed"
    assert record.nodes["node1"].error_code == "privacy_policy"
    assert "require_secure_aggregation" in record.nodes["node1"].error
    assert record.succeeded == ["node2", "node3"]


def test_secure_rounds_train_and_the_server_stores_only_masked_updates(
    federation: LocalFederation,
) -> None:
    before = set(stored_objects(federation))
    private = experiment(
        federation,
        rounds=3,
        secure_aggregation=SecAgg(threshold=2),
    )
    history = private.run()
    assert [r.succeeded for r in history] == [NODES] * 3
    split = federation.split  # type: ignore[attr-defined]
    accuracy = SGDClassifierPlan(private.model_args).evaluate(
        private.aggregated_params(), split.test_x, split.test_y, ["accuracy"]
    )["accuracy"]
    print(f"held-out accuracy after 3 secure rounds: {accuracy:.4f}")
    assert accuracy >= 0.85

    # What a node uploads is readable by itself and the researcher only.
    sent_to_researcher = {
        path
        for path, readers in stored_objects(federation).items()
        if path not in before and len(readers) == 2 and federation.researcher_id in readers
    }
    assert len(sent_to_researcher) == 3 * 3  # one masked vector per node and round
    top_bits: list[np.ndarray] = []
    for path in sent_to_researcher:
        try:
            with open_params(path) as stored:
                assert list(stored) == ["masked"]
                values = stored["masked"]
        except ProtocolError:
            pytest.fail(f"{path.name} is not a masked update")
        assert values.dtype == np.uint64
        top_bits.append(values >> np.uint64(63))
        # A small model has ~100 values: allow the spread of a fair coin (> 5 sigma).
        assert 0.15 < float(np.mean(top_bits[-1])) < 0.85
    # Over all vectors the top bits of masked values are a fair coin; a fixed-point update
    # (small numbers, or their negatives) would have them nearly all alike.
    top_bit = float(np.mean(np.concatenate(top_bits)))
    assert 0.4 < top_bit < 0.6, "an update in fixed point would have its top bits alike"
