"""Central DP through real nodes: epsilon in the history is the accountant's, and
``max_epsilon`` stops the experiment before the round that would pass it."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedward.researcher import Experiment
from fedward.researcher.privacy_settings import CentralDP, SecAgg
from tests.node_job_plans.privacy_plans import ShiftPlan
from tests.privacy.sites import PrivateSites
from tests.unit.test_privacy_dp import reference_epsilon


def test_epsilon_after_each_round_is_the_accountants_figure(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(3)
    dp = CentralDP(clip_norm=1.0, noise_multiplier=1.2, delta=1e-5)
    experiment = sites.experiment(differential_privacy=dp, rounds=3)
    history = experiment.run()
    for rounds, record in enumerate(history, start=1):
        expected = reference_epsilon(1.2, 1.0, rounds, 1e-5)
        print(f"round {rounds}: epsilon {record.epsilon:.4f} (dp-accounting {expected:.4f})")
        assert record.epsilon == expected
        assert record.node_epsilon == dict.fromkeys(sites.node_ids, expected)
        assert record.delta == 1e-5
        # Every node weighs 1: its sample count would tell how much data it has.
        assert {r.sample_count for r in record.nodes.values()} == {1}


def test_under_secure_aggregation_a_node_counts_the_noise_of_the_fewest_survivors(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(5)
    dp = CentralDP(clip_norm=1.0, noise_multiplier=2.0)
    experiment = sites.experiment(differential_privacy=dp, secure_aggregation=SecAgg(threshold=3))
    record = experiment.run_once()
    assert record.epsilon == reference_epsilon(2.0 * math.sqrt(3 / 5), 1.0, 1, 1e-5)


def test_the_update_carries_the_clipped_change_plus_noise(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(2)
    experiment = sites.experiment(
        differential_privacy=CentralDP(clip_norm=0.5, noise_multiplier=0.0)
    )
    start = experiment.global_params()
    experiment.run_once()
    change = {n: experiment.aggregated_params()[n] - start[n] for n in start}
    norm = math.sqrt(sum(float(np.sum(c.astype(np.float64) ** 2)) for c in change.values()))
    assert norm <= 0.5 + 1e-5  # each node moved by at most C, and so does their mean


def test_max_epsilon_stops_the_experiment_before_the_round_that_would_pass_it(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(2)
    sigma, delta = 1.5, 1e-5
    limit = (reference_epsilon(sigma, 1.0, 3, delta) + reference_epsilon(sigma, 1.0, 4, delta)) / 2
    experiment = sites.experiment(
        differential_privacy=CentralDP(clip_norm=1.0, noise_multiplier=sigma, delta=delta),
        max_epsilon=limit,
        rounds=10,
    )
    history = experiment.run()
    assert len(history) == 3
    assert history[-1].epsilon is not None and history[-1].epsilon <= limit
    assert "stopped before round 4" in experiment.stopped_reason
    assert f"past max_epsilon {limit:g}" in experiment.stopped_reason
    print(experiment.stopped_reason)


def test_max_epsilon_needs_differential_privacy(start_sites: Callable[..., PrivateSites]) -> None:
    sites = start_sites(2)
    with pytest.raises(ValueError, match="max_epsilon needs differential_privacy"):
        sites.experiment(max_epsilon=1.0)


def test_a_resumed_experiment_keeps_its_privacy_and_counts_what_it_spent(
    start_sites: Callable[..., PrivateSites], tmp_path: Path
) -> None:
    sites = start_sites(3)
    dp = CentralDP(clip_norm=1.0, noise_multiplier=1.3)
    secagg = SecAgg(threshold=2)
    first = sites.experiment(
        differential_privacy=dp,
        secure_aggregation=secagg,
        max_epsilon=50.0,
        rounds=2,
        checkpoints=True,
        state_dir=tmp_path / "researcher",
    )
    first.run()
    resumed = Experiment.load_checkpoint(
        "latest",
        federation=sites.federation,
        state_dir=tmp_path / "researcher",
        training_plan=ShiftPlan,
        rounds=3,
        progress=False,
    )
    assert resumed.privacy.differential_privacy == dp
    assert resumed.privacy.secure_aggregation == secagg
    assert resumed.privacy.max_epsilon == 50.0
    history = resumed.run()
    assert history[-1].epsilon == reference_epsilon(1.3 * math.sqrt(2 / 3), 1.0, 3, 1e-5)
