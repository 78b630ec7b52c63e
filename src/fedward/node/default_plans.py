"""The training plans shipped with fedward, which a node may auto-approve.

``ALLOW_DEFAULT_TRAINING_PLANS`` (default on) registers these as Approved at every start,
from the installed files, so an upgrade that changes a plan updates its digest too.
"""

from __future__ import annotations

import importlib
import logging

from fedward.errors import PlanError
from fedward.learning.plan_source import plan_source

log = logging.getLogger("fedward.node")

# (module, class): the plan files fedward installs.
SHIPPED_PLANS = (
    ("fedward.learning.plans.sklearn_classifier", "SGDClassifierPlan"),
    ("fedward.learning.plans.sklearn_regressor", "SGDRegressorPlan"),
    ("fedward.learning.plans.sklearn_perceptron", "PerceptronPlan"),
    ("fedward.learning.plans.torch_mlp", "TorchMLPPlan"),
    ("fedward.learning.plans.torch_cnn", "TorchCNNPlan"),
)


def default_plans() -> list[tuple[str, str, str]]:
    """(name, source, class name) of every shipped plan present in this installation."""
    plans: list[tuple[str, str, str]] = []
    for module_name, class_name in SHIPPED_PLANS:
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, class_name)
            plans.append((class_name, plan_source(cls), class_name))
        except (ImportError, AttributeError, PlanError) as exc:
            # torch plans need the [torch] extra; a node without it simply does not offer them.
            log.debug("default plan %s.%s unavailable: %s", module_name, class_name, exc)
    return plans
