"""``reviewed.ReviewedPlan`` reformatted, with new comments: the same code to the node."""

# fmt: off
# ruff: noqa: I001
# Imports in another layout; the node normalises them away.
from __future__ import annotations
from sklearn.linear_model import SGDClassifier
from fedward.learning.sklearn_plan import SklearnTrainingPlan


class ReviewedPlan(SklearnTrainingPlan):
    """Logistic regression; the admin approves this exact code."""

    # The estimator, then its arguments on one line, quoted differently.
    estimator_class = SGDClassifier

    default_estimator_args = {'loss': 'log_loss', 'alpha': 1e-4, 'learning_rate': 'constant', 'eta0': 0.05}  # noqa: E501  same values
