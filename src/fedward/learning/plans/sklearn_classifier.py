"""Default plan: a linear classifier (logistic regression by default) on a CSV table."""

from __future__ import annotations

from sklearn.linear_model import SGDClassifier

from fedward.learning.sklearn_plan import SklearnTrainingPlan


class SGDClassifierPlan(SklearnTrainingPlan):
    """``SGDClassifier`` trained with ``partial_fit``; see ``SklearnTrainingPlan``.

    model_args: ``n_features``, ``classes``, optional ``estimator`` (e.g.
    ``{"loss": "hinge"}``), ``target_column``, ``standardize``.
    Learning rate: the training argument ``optimizer_args={"lr": ...}`` (default 0.05).
    """

    estimator_class = SGDClassifier
    # A constant step: sklearn's decaying schedules restart at every round (their step
    # counter is not a parameter), so "optimal" would take its largest steps every time.
    default_estimator_args = {
        "loss": "log_loss",
        "alpha": 1e-4,
        "learning_rate": "constant",
        "eta0": 0.05,
    }
