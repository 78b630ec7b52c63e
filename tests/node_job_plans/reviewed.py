"""Plans put through the node's approval: logistic regression with a fixed step."""

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
        "eta0": 0.05,
    }


class RequestedPlan(SklearnTrainingPlan):
    """Sent for review by the researcher, approved by the admin."""

    estimator_class = SGDClassifier
    default_estimator_args = {"loss": "log_loss", "learning_rate": "constant", "eta0": 0.02}


class RejectedPlan(SklearnTrainingPlan):
    """Sent for review by the researcher, rejected by the admin."""

    estimator_class = SGDClassifier
    default_estimator_args = {"loss": "hinge", "learning_rate": "constant", "eta0": 0.5}
