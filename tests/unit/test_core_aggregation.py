from __future__ import annotations

import numpy as np
import pytest

from fedward.core import aggregation
from fedward.core.aggregation import WeightedMean, axpy, layout_of
from fedward.errors import ValidationError


def test_weighted_mean_of_three_updates_matches_the_hand_computed_result() -> None:
    mean = WeightedMean()
    mean.add({"w": np.array([1.0, 2.0]), "b": np.array([[0.0]])}, weight=1)
    mean.add({"w": np.array([3.0, 4.0]), "b": np.array([[4.0]])}, weight=3)
    mean.add({"w": np.array([5.0, -6.0]), "b": np.array([[8.0]])}, weight=4)
    # w: (1*1 + 3*3 + 4*5) / 8 = 30/8, (1*2 + 3*4 - 4*6) / 8 = -10/8; b: (0 + 12 + 32) / 8
    result = mean.result()
    np.testing.assert_allclose(result["w"], [3.75, -1.25])
    np.testing.assert_allclose(result["b"], [[5.5]])
    assert mean.count == 3
    assert mean.total_weight == 8


def test_equal_weights_give_the_plain_average() -> None:
    mean = WeightedMean()
    for value in (1.0, 2.0, 6.0):
        mean.add({"w": np.full((2, 2), value, dtype=np.float32)}, weight=10)
    np.testing.assert_allclose(mean.result()["w"], np.full((2, 2), 3.0))


def test_one_update_is_returned_as_is_whatever_its_weight() -> None:
    values = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    mean = WeightedMean()
    mean.add({"w": values}, weight=123.5)
    np.testing.assert_allclose(mean.result()["w"], values, rtol=1e-15)


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (np.float16, [1.0, 2.0]),
        (np.float32, [1.0, 2.0]),
        (np.float64, [1.0, 2.0]),
        (np.int32, [1, 2]),
        (np.int64, [10, 20]),
    ],
)
def test_the_result_keeps_each_parameter_dtype(dtype: type, values: list[float]) -> None:
    mean = WeightedMean()
    mean.add({"p": np.array(values, dtype=dtype)}, weight=1)
    mean.add({"p": np.array(values, dtype=dtype) * 3}, weight=1)
    result = mean.result()["p"]
    assert result.dtype == np.dtype(dtype)
    np.testing.assert_allclose(result.astype(np.float64), np.array(values) * 2)


def test_float16_updates_are_summed_in_float32_so_large_sums_do_not_overflow() -> None:
    # 60000 is near float16's maximum (65504): a float16 running sum would overflow to inf.
    mean = WeightedMean()
    for _ in range(3):
        mean.add({"p": np.array([60000.0], dtype=np.float16)}, weight=1)
    result = mean.result()["p"]
    assert result.dtype == np.float16
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result.astype(np.float64), [60000.0], rtol=1e-3)


def test_scalar_and_empty_parameters_are_averaged() -> None:
    mean = WeightedMean()
    mean.add({"s": np.array(2.0, dtype=np.float32), "e": np.zeros((0, 3))}, weight=1)
    mean.add({"s": np.array(4.0, dtype=np.float32), "e": np.zeros((0, 3))}, weight=3)
    result = mean.result()
    assert result["s"].shape == () and float(result["s"]) == 3.5
    assert result["e"].shape == (0, 3)


def test_tensors_larger_than_one_chunk_are_folded_completely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aggregation, "_CHUNK", 7)  # many chunks and a ragged last one
    a = np.arange(50, dtype=np.float32).reshape(5, 10)
    b = np.ones((5, 10), dtype=np.float32)
    mean = WeightedMean()
    mean.add({"w": a}, weight=1)
    mean.add({"w": b}, weight=4)
    np.testing.assert_allclose(mean.result()["w"], (a + 4 * b) / 5, rtol=1e-6)


def test_axpy_handles_non_contiguous_input() -> None:
    acc = np.zeros((3, 2))
    value = np.arange(6, dtype=np.float64).reshape(2, 3).T  # a transposed view
    axpy(acc, value, 2.0)
    np.testing.assert_array_equal(acc, 2 * value)


@pytest.mark.parametrize("weight", [0, -1, float("nan"), float("inf")])
def test_a_weight_that_is_not_positive_and_finite_is_refused(weight: float) -> None:
    mean = WeightedMean()
    with pytest.raises(ValidationError, match="weight must be positive"):
        mean.add({"w": np.ones(2)}, weight=weight)
    assert mean.count == 0


def test_asking_for_a_result_before_any_update_is_an_error() -> None:
    with pytest.raises(ValidationError, match="no update"):
        WeightedMean().result()


def first_update() -> dict[str, np.ndarray]:
    return {"w": np.array([1.0, 2.0], dtype=np.float32), "b": np.array([3.0], dtype=np.float32)}


@pytest.mark.parametrize(
    ("bad_update", "message"),
    [
        ({"w": np.zeros(2, dtype=np.float32)}, r"missing \['b'\]"),
        (
            {"w": np.zeros(2, np.float32), "b": np.zeros(1, np.float32), "x": np.zeros(1)},
            r"unexpected \['x'\]",
        ),
        (
            {"w": np.zeros(3, dtype=np.float32), "b": np.zeros(1, np.float32)},
            r"'w' is float32\[3\]",
        ),
        (
            {"w": np.zeros(2, dtype=np.float32), "b": np.zeros(1, np.float64)},
            r"'b' is float64\[1\]",
        ),
    ],
)
def test_a_layout_mismatch_is_refused_and_leaves_the_running_sums_untouched(
    bad_update: dict[str, np.ndarray], message: str
) -> None:
    mean = WeightedMean()
    mean.add(first_update(), weight=2)
    with pytest.raises(ValidationError, match=message):
        mean.add(bad_update, weight=5)
    assert mean.count == 1
    assert mean.total_weight == 2
    result = mean.result()
    np.testing.assert_array_equal(result["w"], [1.0, 2.0])
    np.testing.assert_array_equal(result["b"], [3.0])


class CountingMapping(dict[str, np.ndarray]):
    """Records which tensors were read, like a lazy file-backed mapping would."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        super().__init__(params)
        self.reads: list[str] = []

    def __getitem__(self, name: str) -> np.ndarray:
        self.reads.append(name)
        return super().__getitem__(name)


def test_a_bad_lazy_update_is_refused_from_its_layout_before_any_tensor_is_read() -> None:
    mean = WeightedMean()
    mean.add(first_update(), weight=1)
    bad = {"w": np.zeros(2, dtype=np.float32), "b": np.zeros(4, dtype=np.float32)}
    lazy = CountingMapping(bad)
    with pytest.raises(ValidationError):
        mean.add(lazy, weight=1, layout=layout_of(bad))
    assert lazy.reads == []
    np.testing.assert_array_equal(mean.result()["w"], [1.0, 2.0])


def test_layout_of_records_shapes_and_dtypes() -> None:
    assert layout_of(first_update()) == {
        "w": ((2,), np.dtype(np.float32)),
        "b": ((1,), np.dtype(np.float32)),
    }
