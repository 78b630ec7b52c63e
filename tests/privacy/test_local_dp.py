"""Local DP-SGD (Opacus) in a torch plan on real nodes: the steps and sampling rate it
reports give epsilon through the accountant; plans that cannot do it are refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fedward.errors import ValidationError
from fedward.learning.plans.torch_mlp import TorchMLPPlan
from fedward.researcher.privacy_settings import LocalDP
from tests.privacy.sites import PrivateSites
from tests.unit.test_privacy_dp import reference_epsilon


def test_dp_sgd_reports_its_steps_and_epsilon_is_the_accountants(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(2)
    dp = LocalDP(clip_norm=1.0, noise_multiplier=1.1, delta=1e-5)
    experiment = sites.experiment(
        training_plan=TorchMLPPlan,
        model_args={"n_features": 1, "classes": [0, 1], "hidden": [4]},
        training_args={"epochs": 2, "batch_size": 4, "test_ratio": 0.25},
        differential_privacy=dp,
    )
    record = experiment.run_once()
    assert record.succeeded == ["node0", "node1"]
    expected = {}
    for node_id, result in record.nodes.items():
        steps, rate = int(result.metrics["dp_steps"]), result.metrics["dp_sample_rate"]
        train_rows = result.sample_count
        assert rate == pytest.approx(1 / -(-train_rows // 4))
        assert steps == 2 * -(-train_rows // 4)
        expected[node_id] = reference_epsilon(1.1, rate, steps, 1e-5)
    print(f"epsilon per node {record.node_epsilon}, experiment {record.epsilon}")
    assert record.node_epsilon == expected
    assert record.epsilon == max(expected.values())


def test_local_dp_needs_a_torch_plan(start_sites: Callable[..., PrivateSites]) -> None:
    sites = start_sites(2)
    with pytest.raises(ValidationError, match="needs a TorchTrainingPlan"):
        sites.experiment(differential_privacy=LocalDP(1.0, 1.0))
