"""Each aggregator against a small example computed by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.learning.plan import (
    SCAFFOLD_DELTA_CONTROL,
    SCAFFOLD_NODE_CONTROL,
    SCAFFOLD_SERVER_CONTROL,
)
from fedward.researcher.aggregators import (
    AGGREGATORS,
    Aggregator,
    CoordinateMedian,
    FedAdagrad,
    FedAdam,
    FedProx,
    FedYogi,
    Krum,
    Scaffold,
    TrimmedMean,
    aggregator_from_config,
)


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# --- FedProx ------------------------------------------------------------------------------


def test_fedprox_sends_mu_to_every_node_and_averages_like_fedavg() -> None:
    aggregator = FedProx(mu=0.1)
    aggregator.begin_round({"w": vec(0, 0)}, 0)
    assert aggregator.training_args_for_node("node1") == {"fedprox_mu": 0.1}
    aggregator.add("a", {"w": vec(1, 2)}, 1.0)
    aggregator.add("b", {"w": vec(3, 6)}, 3.0)
    # (1 * [1, 2] + 3 * [3, 6]) / 4
    np.testing.assert_allclose(aggregator.finish()["w"], [2.5, 5.0])


def test_fedprox_refuses_a_non_positive_mu() -> None:
    with pytest.raises(ValidationError, match="mu"):
        FedProx(mu=0)


# --- SCAFFOLD -----------------------------------------------------------------------------


def scaffold_round(
    aggregator: Scaffold,
    global_params: dict[str, np.ndarray],
    updates: dict[str, tuple[np.ndarray, np.ndarray, float]],
    population: int,
    round_index: int = 0,
) -> dict[str, np.ndarray]:
    aggregator.begin_round(global_params, round_index, population=population)
    for node_id, (params, delta, weight) in sorted(updates.items()):
        buffer = np.array([2.0 * weight])
        aggregator.add(
            node_id,
            {"w": params, "buffer:m": buffer},
            weight,
            extras={SCAFFOLD_DELTA_CONTROL: {"w": delta}},
        )
    return aggregator.finish()


def test_scaffold_averages_params_and_moves_the_control_by_the_sum_of_deltas_over_n() -> None:
    aggregator = Scaffold()
    start = {"w": vec(0, 0), "buffer:m": vec(0)}
    first = aggregator.extras_for_node("a")
    assert set(first) == {SCAFFOLD_SERVER_CONTROL, SCAFFOLD_NODE_CONTROL}
    result = scaffold_round(
        aggregator,
        start,
        {"a": (vec(1, 2), vec(0.4, -0.8), 1.0), "b": (vec(3, 6), vec(0.2, 0.4), 3.0)},
        population=4,
    )
    np.testing.assert_allclose(result["w"], [2.5, 5.0])
    # The buffer takes the weighted mean: (1 * 2 + 3 * 6) / 4 = 5.
    np.testing.assert_allclose(result["buffer:m"], [5.0])
    # c = 0 + ([0.4, -0.8] + [0.2, 0.4]) / 4
    np.testing.assert_allclose(aggregator.control["w"], [0.15, -0.1])
    extras = aggregator.extras_for_node("a")
    np.testing.assert_allclose(extras[SCAFFOLD_SERVER_CONTROL]["w"], [0.15, -0.1])
    np.testing.assert_allclose(extras[SCAFFOLD_NODE_CONTROL]["w"], [0.4, -0.8])
    assert "buffer:m" not in extras[SCAFFOLD_SERVER_CONTROL]
    np.testing.assert_allclose(aggregator.node_control("c")["w"], [0.0, 0.0])


def test_scaffold_control_stays_the_mean_of_all_node_controls_with_partial_participation() -> None:
    aggregator = Scaffold()
    start = {"w": vec(0, 0), "buffer:m": vec(0)}
    scaffold_round(
        aggregator,
        start,
        {"a": (vec(1, 2), vec(0.4, -0.8), 1.0), "b": (vec(3, 6), vec(0.2, 0.4), 3.0)},
        population=4,
    )
    scaffold_round(
        aggregator, start, {"c": (vec(1, 1), vec(1, 1), 1.0)}, population=4, round_index=1
    )
    # c = [0.15, -0.1] + [1, 1] / 4 = [0.4, 0.15] = (c_a + c_b + c_c + c_d) / 4
    np.testing.assert_allclose(aggregator.control["w"], [0.4, 0.15])
    all_controls = sum(aggregator.node_control(n)["w"] for n in "abcd")
    np.testing.assert_allclose(all_controls / 4, aggregator.control["w"])


def test_scaffold_server_learning_rate_scales_the_step_but_not_the_buffers() -> None:
    aggregator = Scaffold(server_lr=0.5)
    result = scaffold_round(
        aggregator,
        {"w": vec(0, 0), "buffer:m": vec(0)},
        {"a": (vec(1, 2), vec(0, 0), 1.0), "b": (vec(3, 6), vec(0, 0), 3.0)},
        population=2,
    )
    np.testing.assert_allclose(result["w"], [1.25, 2.5])
    np.testing.assert_allclose(result["buffer:m"], [5.0])


def test_scaffold_refuses_an_update_without_control_delta_and_keeps_its_state() -> None:
    aggregator = Scaffold()
    aggregator.begin_round({"w": vec(0, 0)}, 0, population=2)
    with pytest.raises(ValidationError, match="scaffold_delta_control"):
        aggregator.add("a", {"w": vec(9, 9)}, 1.0)
    with pytest.raises(ValidationError, match="control delta"):
        aggregator.add(
            "a", {"w": vec(9, 9)}, 1.0, extras={SCAFFOLD_DELTA_CONTROL: {"w": vec(1, 2, 3)}}
        )
    aggregator.add("b", {"w": vec(1, 1)}, 1.0, extras={SCAFFOLD_DELTA_CONTROL: {"w": vec(2, 2)}})
    np.testing.assert_allclose(aggregator.finish()["w"], [1, 1])
    np.testing.assert_allclose(aggregator.control["w"], [1, 1])
    np.testing.assert_allclose(aggregator.node_control("a")["w"], [0, 0])


def test_a_scaffold_round_that_never_finishes_changes_no_control() -> None:
    aggregator = Scaffold()
    aggregator.begin_round({"w": vec(0)}, 0, population=1)
    aggregator.add("a", {"w": vec(1)}, 1.0, extras={SCAFFOLD_DELTA_CONTROL: {"w": vec(5)}})
    aggregator.begin_round({"w": vec(0)}, 0, population=1)  # the round is retried
    np.testing.assert_allclose(aggregator.node_control("a")["w"], [0])
    np.testing.assert_allclose(aggregator.control["w"], [0])


def test_scaffold_state_restores_server_and_node_controls() -> None:
    aggregator = Scaffold()
    scaffold_round(
        aggregator, {"w": vec(0, 0)}, {"a": (vec(1, 2), vec(0.4, -0.8), 1.0)}, population=2
    )
    tensors, data = aggregator.state()
    restored = Scaffold()
    restored.load_state(tensors, data)
    np.testing.assert_array_equal(restored.control["w"], aggregator.control["w"])
    np.testing.assert_array_equal(restored.node_control("a")["w"], vec(0.4, -0.8))
    aggregator.close()
    restored.close()


# --- server optimisers ------------------------------------------------------------------


def one_update_round(aggregator: FedAdam | FedYogi | FedAdagrad, x: float, mean: float) -> float:
    aggregator.begin_round({"w": vec(x), "buffer:n": vec(7), "steps": np.array([4])}, 0)
    aggregator.add("a", {"w": vec(mean - 1), "buffer:n": vec(1), "steps": np.array([2])}, 1.0)
    aggregator.add("b", {"w": vec(mean + 1), "buffer:n": vec(3), "steps": np.array([6])}, 1.0)
    result = aggregator.finish()
    # Buffers and integers are averaged, never stepped.
    np.testing.assert_allclose(result["buffer:n"], [2.0])
    assert result["steps"].dtype == np.int64 and result["steps"][0] == 4
    return float(result["w"][0])


def test_fedadam_steps_along_the_pseudo_gradient_with_its_moments() -> None:
    aggregator = FedAdam(lr=0.1, beta1=0.9, beta2=0.99, tau=0.1)
    # d = 3 - 1 = 2; m = 0.1 * 2 = 0.2; v = 0.99 * 0.01 + 0.01 * 4 = 0.0499
    # x = 1 + 0.1 * 0.2 / (sqrt(0.0499) + 0.1) = 1 + 0.02 / 0.32338...
    x1 = one_update_round(aggregator, 1.0, 3.0)
    assert x1 == pytest.approx(1.0618459, abs=1e-6)
    # d = 1; m = 0.9 * 0.2 + 0.1 = 0.28; v = 0.99 * 0.0499 + 0.01 = 0.059401
    x2 = one_update_round(aggregator, x1, x1 + 1.0)
    assert x2 == pytest.approx(x1 + 0.1 * 0.28 / (np.sqrt(0.059401) + 0.1), abs=1e-9)
    assert x2 - x1 == pytest.approx(0.0814609, abs=1e-6)  # 0.028 / 0.343723...


def test_fedyogi_grows_the_second_moment_additively() -> None:
    aggregator = FedYogi(lr=0.1, beta1=0.9, beta2=0.99, tau=0.1)
    # v = 0.01 - 0.01 * 4 * sign(0.01 - 4) = 0.05; x = 1 + 0.02 / (sqrt(0.05) + 0.1)
    assert one_update_round(aggregator, 1.0, 3.0) == pytest.approx(1.0618034, abs=1e-6)


def test_fedadagrad_sums_squared_pseudo_gradients_without_momentum() -> None:
    aggregator = FedAdagrad(lr=0.1, tau=0.1)
    # m = d = 2; v = 0.01 + 4 = 4.01; x = 1 + 0.2 / (sqrt(4.01) + 0.1)
    assert one_update_round(aggregator, 1.0, 3.0) == pytest.approx(1.0951249, abs=1e-6)


def test_server_optimiser_state_replays_the_same_next_step() -> None:
    first = FedAdam(lr=0.1, tau=0.1)
    x1 = one_update_round(first, 1.0, 3.0)
    tensors, data = first.state()
    second = FedAdam(**first.config())
    second.load_state(tensors, data)
    assert one_update_round(first, x1, x1 + 1) == one_update_round(second, x1, x1 + 1)


# --- robust rules -----------------------------------------------------------------------


def spooled(
    aggregator: CoordinateMedian | TrimmedMean | Krum, rows: dict[str, np.ndarray]
) -> np.ndarray:
    aggregator.begin_round({"w": np.zeros(len(next(iter(rows.values()))), np.float32)}, 0)
    for node_id, row in sorted(rows.items()):
        aggregator.add(node_id, {"w": row.astype(np.float32)}, 1.0)
    result = aggregator.finish()["w"]
    assert result.dtype == np.float32
    aggregator.close()
    return result


def test_coordinate_median_takes_the_middle_value_of_each_coordinate() -> None:
    rows = {"a": vec(1, 10, 5), "b": vec(2, -4, 7), "c": vec(100, 0, 6)}
    np.testing.assert_allclose(spooled(CoordinateMedian(), rows), [2, 0, 6])
    rows["d"] = vec(3, 1, 6)  # an even count: the mean of the two middle values
    np.testing.assert_allclose(spooled(CoordinateMedian(), rows), [2.5, 0.5, 6])


def test_trimmed_mean_drops_the_extremes_of_each_coordinate() -> None:
    rows = {"a": vec(1, 0), "b": vec(2, 0), "c": vec(3, 0), "d": vec(4, 0), "e": vec(100, -50)}
    # floor(0.2 * 5) = 1 value cut on each side: mean(2, 3, 4) = 3; mean(0, 0, 0) = 0
    np.testing.assert_allclose(spooled(TrimmedMean(trim_ratio=0.2), rows), [3, 0])
    np.testing.assert_allclose(spooled(TrimmedMean(trim_ratio=0.0), rows), [22, -10])


KRUM_ROWS = {
    "a": vec(0, 0),
    "b": vec(1, 0),
    "c": vec(0, 1),
    "d": vec(0.5, 0.5),
    "e": vec(10, 10),
}


def test_krum_picks_the_update_closest_to_its_neighbours() -> None:
    aggregator = Krum(byzantine=1)
    # n - f - 2 = 2 neighbours. Scores: d 0.5 + 0.5 = 1; a, b, c 0.5 + 1 = 1.5; e 162 + 181.
    np.testing.assert_allclose(spooled(aggregator, KRUM_ROWS), [0.5, 0.5])
    assert aggregator.selected == ["d"]


def test_multi_krum_averages_the_best_updates() -> None:
    aggregator = Krum(byzantine=1, multi=2)
    # d, then the first of the tied a, b, c (node order): mean of (0.5, 0.5) and (0, 0).
    np.testing.assert_allclose(spooled(aggregator, KRUM_ROWS), [0.25, 0.25])
    assert aggregator.selected == ["a", "d"]


def test_krum_with_too_few_updates_says_how_many_it_needs() -> None:
    with pytest.raises(ValidationError, match="needs at least 4 updates, got 3"):
        spooled(Krum(byzantine=1), {k: KRUM_ROWS[k] for k in "abc"})


def test_robust_rules_refuse_updates_with_nan() -> None:
    aggregator = CoordinateMedian()
    aggregator.begin_round({"w": np.zeros(2)}, 0)
    with pytest.raises(ValidationError, match="NaN"):
        aggregator.add("a", {"w": vec(1, np.nan)}, 1.0)
    aggregator.add("b", {"w": vec(1, 2)}, 1.0)
    np.testing.assert_allclose(aggregator.finish()["w"], [1, 2])
    aggregator.close()


def test_large_updates_spill_to_disk_and_give_the_same_median(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = {f"n{i}": rng.normal(size=70_001) for i in range(3)}  # over one 65536 chunk
    aggregator = CoordinateMedian(memory_limit_mb=0.5, spool_dir=tmp_path)
    aggregator.begin_round({"w": np.zeros(70_001), "buffer:b": np.zeros(1)}, 0)
    for node_id, row in rows.items():
        aggregator.add(node_id, {"w": row, "buffer:b": vec(1)}, 1.0)
    assert aggregator._spool is not None and aggregator._spool.on_disk
    assert any(tmp_path.iterdir())
    result = aggregator.finish()
    np.testing.assert_array_equal(result["w"], np.median(np.stack(list(rows.values())), axis=0))
    aggregator.close()
    assert not any(tmp_path.iterdir())


def robust_buffers(aggregator: Aggregator, weights: dict[str, float]) -> Params:
    """Buffers (float and integer) after one round where node ``c`` poisons them."""
    aggregator.begin_round({"w": vec(0), "buffer:m": vec(0), "steps": np.array([0])}, 0)
    rows = {"a": (1.0, 2), "b": (2.0, 4), "c": (1e6, 10**9), "d": (3.0, 5)}
    for node_id, (mean, steps) in rows.items():
        update = {"w": vec(mean), "buffer:m": vec(mean), "steps": np.array([steps])}
        aggregator.add(node_id, update, weights[node_id])
    result = aggregator.finish()
    aggregator.close()
    return {name: result[name] for name in ("buffer:m", "steps")}


@pytest.mark.parametrize(
    ("aggregator", "buffer", "steps"),
    [
        (CoordinateMedian, 2.5, 4),  # medians of (1, 2, 3, 1e6) and (2, 4, 5, 1e9), 4.5 -> 4
        (lambda: TrimmedMean(trim_ratio=0.25), 2.5, 4),  # one cut each side: same middles
        # Krum picks a (a, b, d tie at squared distance 1; node order), buffers and all.
        (lambda: Krum(byzantine=1), 1.0, 2),
    ],
)
def test_robust_rules_combine_buffers_by_their_rule_whatever_weight_a_node_claims(
    aggregator: Callable[[], Aggregator], buffer: float, steps: int
) -> None:
    honest = robust_buffers(aggregator(), dict.fromkeys("abcd", 10.0))
    claimed = robust_buffers(aggregator(), {**dict.fromkeys("abd", 10.0), "c": 2.0**53})
    for result in (honest, claimed):
        np.testing.assert_array_equal(result["buffer:m"], [buffer])
        np.testing.assert_array_equal(result["steps"], [steps])
        assert result["steps"].dtype == np.int64


def test_a_robust_rule_that_refuses_an_update_keeps_no_part_of_it() -> None:
    aggregator = CoordinateMedian()
    aggregator.begin_round({"w": vec(0), "buffer:m": vec(0)}, 0)
    with pytest.raises(ValidationError, match="NaN"):
        aggregator.add("a", {"w": vec(np.nan), "buffer:m": vec(1e9)}, 1.0)
    aggregator.add("b", {"w": vec(1), "buffer:m": vec(3)}, 1.0)
    result = aggregator.finish()
    np.testing.assert_array_equal(result["buffer:m"], [3])  # not the median of 1e9 and 3
    aggregator.close()


def test_robust_rules_do_not_stream_and_the_others_do() -> None:
    streaming = sorted(n for n, cls in AGGREGATORS.items() if cls.streaming)
    assert streaming == ["fedadagrad", "fedadam", "fedavg", "fedprox", "fedyogi", "scaffold"]


# --- rebuilding from configuration ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_every_aggregator_rebuilds_from_its_name_and_config(name: str) -> None:
    original = aggregator_from_config(name)
    rebuilt = aggregator_from_config(original.name, original.config())
    assert type(rebuilt) is type(original)
    assert rebuilt.config() == original.config()
    original.close()
    rebuilt.close()


def test_an_unknown_aggregator_name_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="fedavg"):
        aggregator_from_config("fedmagic")
    with pytest.raises(ValidationError, match="unknown krum aggregator argument 'nonsense'"):
        aggregator_from_config("krum", {"nonsense": 1})
