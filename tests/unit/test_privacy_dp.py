"""Central DP's clipping and noise, and the accountant against dp-accounting itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import dp_event, rdp

from fedward.privacy.accounting import PrivacyEvent, epsilon
from fedward.privacy.noise import clip_and_noise, node_noise_multiplier, noise_share, update_norm


def reference_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    accountant = rdp.RdpAccountant()
    event = dp_event.GaussianDpEvent(sigma)
    accountant.compose(event if q == 1 else dp_event.PoissonSampledDpEvent(q, event), steps)
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(
    ("sigma", "q", "steps", "delta"),
    [(1.1, 0.01, 1000, 1e-5), (0.8, 1.0, 10, 1e-5), (2.0, 0.05, 300, 1e-6), (1.0, 1.0, 1, 1e-3)],
)
def test_epsilon_is_the_accountants_figure(
    sigma: float, q: float, steps: int, delta: float
) -> None:
    ours = epsilon([PrivacyEvent(sigma, q, steps)], delta)
    theirs = reference_epsilon(sigma, q, steps, delta)
    print(f"sigma {sigma} q {q} steps {steps} delta {delta}: epsilon {ours:.6f}")
    assert ours == theirs


def test_events_compose_like_one_longer_run() -> None:
    split = epsilon([PrivacyEvent(1.0, 1.0, 3), PrivacyEvent(1.0, 1.0, 2)], 1e-5)
    assert split == pytest.approx(epsilon([PrivacyEvent(1.0, 1.0, 5)], 1e-5))
    assert epsilon([PrivacyEvent(0.0)], 1e-5) == math.inf
    assert epsilon([], 1e-5) == 0.0


def test_the_change_is_clipped_to_the_norm_and_integers_keep_the_global_value() -> None:
    start = {"w": np.zeros(100, np.float32), "count": np.array([3], np.int64)}
    trained = {"w": np.full(100, 1.0, np.float32), "count": np.array([9], np.int64)}
    noised, norm = clip_and_noise(start, trained, clip_norm=2.0, noise_std=0.0)
    assert norm == pytest.approx(10.0)
    assert update_norm(start, noised) == pytest.approx(2.0, rel=1e-6)
    assert noised["count"].tolist() == [3]


def test_the_noise_has_the_asked_standard_deviation() -> None:
    start = {"w": np.zeros(200_000)}
    noised, _ = clip_and_noise(start, {"w": np.zeros(200_000)}, clip_norm=1.0, noise_std=0.5)
    assert float(np.std(noised["w"])) == pytest.approx(0.5, rel=0.01)


def test_noise_shares_add_up_to_sigma_c_under_secure_aggregation() -> None:
    share = noise_share(1.5, 2.0, cohort_size=9)
    assert math.sqrt(9 * share**2) == pytest.approx(3.0)
    assert noise_share(1.5, 2.0, cohort_size=None) == 3.0
    assert node_noise_multiplier(2.0, 8, 5) == pytest.approx(2.0 * math.sqrt(5 / 8))


def test_frozen_tensors_keep_the_global_value_and_do_not_count_in_the_norm() -> None:
    start = {"w": np.zeros(4), "buffer:feature_mean": np.zeros(4)}
    trained = {"w": np.full(4, 0.5), "buffer:feature_mean": np.full(4, 100.0)}
    noised, norm = clip_and_noise(start, trained, 5.0, 0.0, frozen=["buffer:feature_mean"])
    assert norm == pytest.approx(1.0)
    assert noised["w"].tolist() == [0.5] * 4
    assert noised["buffer:feature_mean"].tolist() == [0.0] * 4
