from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from fedward.errors import UndefinedMetricError, ValidationError
from fedward.learning import metrics
from fedward.learning.metrics import compute_metrics

SEEDS = range(8)


def random_labels(seed: int, n_classes: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n)
    # Mostly right predictions, so scores are not all near chance.
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, n_classes, n))
    return y_true, y_pred


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_classification_metrics_match_sklearn(seed: int) -> None:
    y_true, y_pred = random_labels(seed, 2)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert metrics.f1(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred))
    assert metrics.precision(y_true, y_pred) == pytest.approx(skm.precision_score(y_true, y_pred))
    assert metrics.recall(y_true, y_pred) == pytest.approx(skm.recall_score(y_true, y_pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_macro_metrics_match_sklearn(seed: int) -> None:
    y_true, y_pred = random_labels(seed, 4)
    for ours, theirs in [
        (metrics.f1, skm.f1_score),
        (metrics.precision, skm.precision_score),
        (metrics.recall, skm.recall_score),
    ]:
        expected = theirs(y_true, y_pred, average="macro", zero_division=0)
        assert ours(y_true, y_pred) == pytest.approx(expected)
        assert ours(y_true, y_pred, "macro") == pytest.approx(expected)


def test_string_labels_score_the_larger_label_as_positive() -> None:
    y_true = np.array(["benign", "malignant", "malignant", "benign", "malignant"])
    y_pred = np.array(["benign", "malignant", "benign", "malignant", "malignant"])
    assert metrics.f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, pos_label="malignant")
    )


def test_zero_one_labels_keep_one_positive_when_only_zeros_appear() -> None:
    zeros = np.zeros(5, dtype=int)
    assert metrics.recall(zeros, zeros) == skm.recall_score(zeros, zeros, zero_division=0)
    assert metrics.f1(zeros, zeros) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_roc_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 150)
    scores = np.round(y_true + rng.normal(0, 1.2, 150), 1)  # rounding makes ties
    assert metrics.roc_auc(y_true, scores) == pytest.approx(skm.roc_auc_score(y_true, scores))
    two_columns = np.stack([-scores, scores], axis=1)
    assert metrics.roc_auc(y_true, two_columns) == pytest.approx(skm.roc_auc_score(y_true, scores))


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_roc_auc_matches_sklearn_one_vs_rest_macro(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, 120)
    logits = rng.normal(0, 1, (120, 3)) + 1.5 * np.eye(3)[y_true]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro")
    assert metrics.roc_auc(y_true, proba) == pytest.approx(expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(3, 2, 100)
    y_pred = y_true + rng.normal(0.3, 0.8, 100)
    assert metrics.mse(y_true, y_pred) == pytest.approx(skm.mean_squared_error(y_true, y_pred))
    assert metrics.mae(y_true, y_pred) == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert metrics.explained_variance(y_true, y_pred) == pytest.approx(
        skm.explained_variance_score(y_true, y_pred)
    )


def test_multi_output_regression_averages_outputs_like_sklearn() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=(50, 3))
    y_pred = y_true + rng.normal(size=(50, 3))
    assert metrics.explained_variance(y_true, y_pred) == pytest.approx(
        skm.explained_variance_score(y_true, y_pred)
    )
    assert metrics.mse(y_true, y_pred) == pytest.approx(skm.mean_squared_error(y_true, y_pred))


def test_explained_variance_of_constant_target_is_finite_like_sklearn() -> None:
    constant = np.ones(10)
    assert metrics.explained_variance(constant, constant) == 1.0
    assert metrics.explained_variance(constant, constant + np.arange(10)) == 0.0


def test_roc_auc_with_one_class_is_undefined() -> None:
    with pytest.raises(UndefinedMetricError):
        metrics.roc_auc(np.ones(4), np.arange(4.0))


def test_compute_metrics_returns_requested_names_and_skips_undefined() -> None:
    y_true = np.array([0, 1, 1, 0])
    y_pred = np.array([0, 1, 0, 0])
    got = compute_metrics(
        ["accuracy", "f1", "roc_auc"], y_true, y_pred, np.array([0.1, 0.9, 0.4, 0.2])
    )
    assert got == {
        "accuracy": 0.75,
        "f1": pytest.approx(skm.f1_score(y_true, y_pred)),
        "roc_auc": 1.0,
    }
    assert compute_metrics(["roc_auc"], np.ones(3), np.ones(3), np.arange(3.0)) == {}
    assert compute_metrics(["roc_auc"], y_true, y_pred) == {}


def test_compute_metrics_rejects_unknown_names_listing_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown metric.*choose among"):
        compute_metrics(["acuracy"], np.zeros(2), np.zeros(2))


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValidationError, match="3 labels but y_pred has 2"):
        metrics.accuracy(np.zeros(3), np.zeros(2))
