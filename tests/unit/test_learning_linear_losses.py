from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import hinge_loss, log_loss

from fedward.errors import PlanError
from fedward.learning.linear_losses import classification_loss, regression_loss


def test_binary_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    decision = rng.normal(0, 2, 50)
    proba = 1 / (1 + np.exp(-decision))
    ours = classification_loss("log_loss", decision, y, np.array([0, 1]))
    assert ours == pytest.approx(log_loss(y, proba))


def test_binary_hinge_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    decision = rng.normal(0, 2, 50)
    ours = classification_loss("hinge", decision, y, np.array([0, 1]))
    assert ours == pytest.approx(hinge_loss(np.where(y == 1, 1, -1), decision))


def test_multiclass_loss_averages_one_vs_rest_columns() -> None:
    classes = np.array(["a", "b", "c"])
    y = np.array(["a", "c"])
    decision = np.array([[2.0, -1.0, -3.0], [0.0, 0.0, 1.0]])
    # perceptron loss max(0, -margin): only the wrong-signed margins count.
    assert classification_loss("perceptron", decision, y, classes) == pytest.approx(0.0)
    assert classification_loss("hinge", decision, y, classes) == pytest.approx(
        (0 + 0 + 0 + 1 + 1 + 0) / 6
    )


def test_regression_losses() -> None:
    y = np.array([1.0, 2.0, 3.0])
    prediction = np.array([1.0, 2.5, 5.0])
    assert regression_loss("squared_error", prediction, y) == pytest.approx((0 + 0.125 + 2) / 3)
    assert regression_loss("epsilon_insensitive", prediction, y, 0.5) == pytest.approx(1.5 / 3)
    with pytest.raises(PlanError, match="no training-loss formula"):
        regression_loss("quantile", prediction, y)
