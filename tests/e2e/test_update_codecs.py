"""Update codecs through real nodes: the model after a few rounds is close to the plain run's.

Three node processes, Mosquitto and the upload server on loopback; the same experiment
(seeded) with ``update_codec`` none, float16 and int8. The codecs change what travels
(16-bit or 8-bit deltas, the global model as a float16 delta from round 2 on), so the
parameters differ from the plain run by rounding, not by a different training.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment

from .conftest import breast_cancer_federation

TAGS = ["breast-cancer", "codecs"]
ROUNDS = 4


@pytest.fixture(scope="module")
def codec_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("codecs")
    with breast_cancer_federation(workdir, ["node1", "node2", "node3"], TAGS, max_blob_mb=8) as fed:
        yield fed


def _run(fed: LocalFederation, codec: str) -> tuple[dict[str, np.ndarray], float]:
    split = fed.split  # type: ignore[attr-defined]
    experiment = Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        rounds=ROUNDS,
        round_timeout_s=60,
        seed=3,
        update_codec=codec,
        federation=fed.researcher(),
        progress=False,
        checkpoints=False,
    )
    history = experiment.run()
    assert [r.succeeded for r in history] == [["node1", "node2", "node3"]] * ROUNDS
    params = experiment.aggregated_params()
    accuracy = SGDClassifierPlan(experiment.model_args).evaluate(
        params, split.test_x, split.test_y, ["accuracy"]
    )["accuracy"]
    return params, accuracy


def test_codecs_train_close_to_the_plain_run(codec_federation: LocalFederation) -> None:
    plain, plain_accuracy = _run(codec_federation, "none")
    for codec, tolerance in (("float16", 5e-3), ("int8", 5e-2)):
        params, accuracy = _run(codec_federation, codec)
        assert sorted(params) == sorted(plain)
        # per tensor, relative to its own scale: the weights and the feature statistics
        # (values up to 1e6) are judged each on their own
        relative = {
            name: float(np.abs(params[name] - plain[name]).max())
            / max(float(np.abs(plain[name]).max()), 1e-12)
            for name in plain
        }
        print(f"{codec}: max relative difference per tensor {relative}; accuracy "
              f"{accuracy:.4f} vs {plain_accuracy:.4f}")  # fmt: skip
        assert max(relative.values()) > 0  # it did change what travelled, a little
        assert all(r <= tolerance for r in relative.values()), relative
        assert accuracy >= plain_accuracy - 0.02
