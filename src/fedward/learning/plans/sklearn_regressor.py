"""Default plan: a linear regressor (least squares by default) on a CSV table."""

from __future__ import annotations

from sklearn.linear_model import SGDRegressor

from fedward.learning.sklearn_plan import SklearnTrainingPlan


class SGDRegressorPlan(SklearnTrainingPlan):
    """``SGDRegressor`` trained with ``partial_fit``; see ``SklearnTrainingPlan``.

    model_args: ``n_features``, optional ``estimator`` (e.g. ``{"loss": "huber"}``),
    ``target_column``, ``standardize``.
    Learning rate: the training argument ``optimizer_args={"lr": ...}`` (default 0.01).
    """

    estimator_class = SGDRegressor
    # A constant step: decaying schedules would restart at every round.
    default_estimator_args = {
        "loss": "squared_error",
        "alpha": 1e-4,
        "learning_rate": "constant",
        "eta0": 0.01,
    }
