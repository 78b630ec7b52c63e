"""The data loss of sklearn's SGD linear models, for live training-loss curves.

sklearn computes these inside Cython and does not expose them, so the plans recompute
the loss of a batch from the decision values. Classifier losses take labels as +1/-1
per one-vs-rest column (as sklearn trains them) and are averaged over columns. The
regularisation term is left out: the curve shows how well the model fits the data.
"""

from __future__ import annotations

import numpy as np

from fedward.errors import PlanError


def _huber(residual: np.ndarray, epsilon: float) -> np.ndarray:
    absolute = np.abs(residual)
    return np.where(absolute <= epsilon, 0.5 * residual**2, epsilon * (absolute - 0.5 * epsilon))


def _margin_loss(loss: str, margin: np.ndarray, epsilon: float) -> np.ndarray:
    hinge = np.maximum(0.0, 1.0 - margin)
    if loss == "log_loss":
        return np.logaddexp(0.0, -margin)
    if loss == "hinge":
        return hinge
    if loss == "squared_hinge":
        return hinge**2
    if loss == "perceptron":
        return np.maximum(0.0, -margin)
    if loss == "modified_huber":
        return np.where(margin >= -1.0, hinge**2, -4.0 * margin)
    # Regression losses used as classifiers fit the +1/-1 targets.
    return _residual_loss(loss, 1.0 - margin, epsilon)


def _residual_loss(loss: str, residual: np.ndarray, epsilon: float) -> np.ndarray:
    if loss == "squared_error":
        return 0.5 * residual**2
    if loss == "huber":
        return _huber(residual, epsilon)
    if loss == "epsilon_insensitive":
        return np.maximum(0.0, np.abs(residual) - epsilon)
    if loss == "squared_epsilon_insensitive":
        return np.maximum(0.0, np.abs(residual) - epsilon) ** 2
    raise PlanError(f"no training-loss formula for loss {loss!r}")


def classification_loss(
    loss: str, decision: np.ndarray, y: np.ndarray, classes: np.ndarray, epsilon: float = 0.1
) -> float:
    """Mean loss of ``decision`` (n,) for two classes or (n, k) one-vs-rest columns."""
    if decision.ndim == 1:
        signs = np.where(y == classes[1], 1.0, -1.0)
    else:
        signs = np.where(y[:, np.newaxis] == classes[np.newaxis, :], 1.0, -1.0)
    return float(np.mean(_margin_loss(loss, signs * decision, epsilon)))


def regression_loss(
    loss: str, prediction: np.ndarray, y: np.ndarray, epsilon: float = 0.1
) -> float:
    residual = np.asarray(y, dtype=float) - prediction
    return float(np.mean(_residual_loss(loss, residual, epsilon)))
