"""The training plans shipped with fedward, which a node may auto-approve.

``ALLOW_DEFAULT_TRAINING_PLANS`` (default on) registers these as Approved at every start,
read from the installed files, so an upgrade that changes a plan updates its digest too
(``PlanService.sync_defaults``); with it off they are retired and stop authorising. The
files are read, not imported (``plan_files``): the text is exactly what a researcher's
``plan_source`` sends for the same class.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fedward.errors import PlanError
from fedward.node.plan_files import missing_packages, plan_source_from_text

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
    """(name, source, class name) of every shipped plan this installation can run."""
    plans: list[tuple[str, str, str]] = []
    for module_name, class_name in SHIPPED_PLANS:
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None:
            log.debug("default plan module %s is not installed", module_name)
            continue
        try:
            text = Path(spec.origin).read_text(encoding="utf-8")
            source = plan_source_from_text(text, class_name, module_name)
        except (OSError, UnicodeDecodeError, PlanError) as exc:
            log.warning("default plan %s.%s unreadable: %s", module_name, class_name, exc)
            continue
        missing = missing_packages(source)
        if missing:
            # torch plans need the [torch] extra; a node without it does not offer them.
            log.info("default plan %s not offered: %s not installed", class_name, missing)
            continue
        plans.append((class_name, source, class_name))
    return plans
