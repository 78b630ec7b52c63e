"""Two fresh federations with the same data and seed train to the same parameters.

Each federation is new (its own broker, upload server, node processes and databases), so
dataset ids, experiment ids and request ids all differ; nothing random may seed the
nodes' training: the split, the batch order and a torch plan's dropout come from the
experiment's seed, the node's id and the round. The threads each node trained with are
recorded, since the arithmetic (hence the last bits) depends on them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedward.core.params import Params
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.learning.plans.torch_mlp import TorchMLPPlan
from fedward.researcher import Experiment

from .conftest import breast_cancer_federation

NODES = ["node1", "node2"]
TAGS = ["breast-cancer", "twice"]


def train_in_a_fresh_federation(workdir: Path) -> tuple[list[Params], list[str], list[int]]:
    """(final parameters of a sklearn and a torch experiment, dataset ids, threads)."""
    results: list[Params] = []
    threads: list[int] = []
    with breast_cancer_federation(workdir, NODES, TAGS) as fed:
        experiments = [
            Experiment(
                tags=TAGS,
                training_plan=SGDClassifierPlan,
                model_args={"n_features": 30, "classes": [0, 1]},
                training_args={"epochs": 2, "batch_size": 16, "optimizer_args": {"lr": 0.02}},
                rounds=2,
                seed=42,
                federation=fed.researcher(),
                progress=False,
            ),
            Experiment(
                tags=TAGS,
                training_plan=TorchMLPPlan,
                model_args={"n_features": 30, "classes": [0, 1], "hidden": [8], "dropout": 0.3},
                training_args={"epochs": 1, "batch_size": 32},
                rounds=2,
                seed=42,
                federation=fed.researcher(),
                progress=False,
            ),
        ]
        for experiment in experiments:
            history = experiment.run()
            assert [r.succeeded for r in history] == [NODES, NODES]
            results.append(experiment.aggregated_params())
            threads += [history[-1].nodes[n].threads for n in NODES]
        dataset_ids = [d.dataset_id for d in experiments[0].nodes().values()]
    return results, dataset_ids, threads


@pytest.mark.timeout(300)
def test_two_fresh_federations_with_the_same_data_and_seed_give_identical_parameters(
    tmp_path: Path,
) -> None:
    first, first_datasets, first_threads = train_in_a_fresh_federation(tmp_path / "first")
    second, second_datasets, second_threads = train_in_a_fresh_federation(tmp_path / "second")

    assert set(first_datasets).isdisjoint(second_datasets)  # random ids, not used as seeds
    assert first_threads == second_threads and all(t > 0 for t in first_threads)
    for mine, theirs in zip(first, second, strict=True):
        assert sorted(mine) == sorted(theirs)
        for name in mine:
            assert mine[name].tobytes() == theirs[name].tobytes(), name
