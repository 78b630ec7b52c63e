"""``reviewed.ReviewedPlan`` with one constant changed (``eta0``): new code to the node."""

from __future__ import annotations

from sklearn.linear_model import SGDClassifier

from fedward.learning.sklearn_plan import SklearnTrainingPlan


class ReviewedPlan(SklearnTrainingPlan):
    """Logistic regression; the admin approves this exact code."""

    estimator_class = SGDClassifier
    default_estimator_args = {
        "loss": "log_loss",
        "alpha": 1e-4,
        "learning_rate": "constant",
        "eta0": 0.06,
    }
