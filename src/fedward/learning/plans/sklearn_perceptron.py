"""Default plan: a perceptron on a CSV table."""

from __future__ import annotations

from sklearn.linear_model import Perceptron

from fedward.learning.sklearn_plan import SklearnTrainingPlan


class PerceptronPlan(SklearnTrainingPlan):
    """``Perceptron`` trained with ``partial_fit``; see ``SklearnTrainingPlan``.

    model_args: ``n_features``, ``classes``, optional ``estimator`` (e.g.
    ``{"penalty": "l2", "alpha": 1e-4}``), ``target_column``, ``standardize``.
    Learning rate: the training argument ``optimizer_args={"lr": ...}`` (default 1.0).
    """

    estimator_class = Perceptron
    default_estimator_args = {"eta0": 1.0}
