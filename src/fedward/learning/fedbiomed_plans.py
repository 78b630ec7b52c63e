"""Training plans written for Fed-BioMed, refused with the fedward way to write them.

A Fed-BioMed plan ported by changing its imports keeps Fed-BioMed's method signatures
(``init_model(self, model_args)``, ``training_step(self, data, target)``, ...) and
idioms (``self.model()``, ``DataManager``). In fedward those would fail on the node, with
a bare ``TypeError``, after the plan was sent and reviewed. ``check_plan_class`` finds
them on the researcher's side, before anything is sent, and names fedward's form.
``docs/from-fedbiomed.md`` maps every name.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Mapping

from fedward.errors import PlanError, UnknownImport
from fedward.learning.plan import TrainingPlan

#: Names Fed-BioMed's users import, and where fedward has them.
LEARNING_NAMES: Mapping[str, str] = {
    "TorchTrainingPlan": "fedward.learning.torch_plan.TorchTrainingPlan",
    "SKLearnTrainingPlan": "fedward.learning.sklearn_plan.SklearnTrainingPlan",
    "FedSGDClassifier": "fedward.learning.plans.sklearn_classifier.SGDClassifierPlan",
    "FedSGDRegressor": "fedward.learning.plans.sklearn_regressor.SGDRegressorPlan",
    "FedPerceptron": "fedward.learning.plans.sklearn_perceptron.PerceptronPlan",
    "BaseTrainingPlan": "fedward.learning.plan.TrainingPlan",
    "DataManager": "nothing: training_data(self, dataset) returns (inputs, targets) or a "
    "torch Dataset, and fedward batches it",
}

# method -> (positional parameters after self in fedward, fedward's signature, what to do)
_SIGNATURES: Mapping[str, tuple[int, str, str]] = {
    "init_model": (0, "init_model(self)", "read the model arguments from self.model_args"),
    "training_step": (
        3,
        "training_step(self, model, inputs, targets)",
        "the model is passed in: call model(inputs), not self.model()",
    ),
    "testing_step": (
        3,
        "testing_step(self, model, inputs, targets)",
        "the model is passed in; return (predictions, scores)",
    ),
    "training_data": (
        1,
        "training_data(self, dataset)",
        "dataset.path is where the node's data lies; return (inputs, targets) or a torch "
        "Dataset (batch_size is a training argument)",
    ),
    "init_optimizer": (
        2,
        "init_optimizer(self, model, optimizer_args)",
        "the model is passed in: model.parameters(), not self.model().parameters()",
    ),
}

# Fed-BioMed idioms in a plan's code -> fedward's way: methods it called, names it read.
_CALLED: Mapping[str, str] = {
    "self.model()": "the model is an argument of training_step / init_optimizer / testing_step",
    "self.optimizer()": "fedward builds the optimizer with init_optimizer(self, model, "
    "optimizer_args) and steps it itself",
}
_READ: Mapping[str, str] = {
    "self.dataset_path": "training_data(self, dataset) gets it as dataset.path",
    "DataManager": LEARNING_NAMES["DataManager"],
}


def learning_name(name: str) -> UnknownImport | None:
    """The error for Fed-BioMed's ``name`` looked up in ``fedward.learning``, if it is one."""
    where = LEARNING_NAMES.get(name)
    if where is None:
        return None
    return UnknownImport(f"{name} is Fed-BioMed's name; fedward's is {where}")


def check_plan_class(cls: type[TrainingPlan]) -> None:
    """``PlanError`` for Fed-BioMed signatures and idioms in ``cls`` (see the module)."""
    if "init_dependencies" in _own_names(cls):
        raise PlanError(
            f"{cls.__name__}.init_dependencies is Fed-BioMed's; fedward sends the plan "
            "file's top-level imports",
            hint="delete init_dependencies and import what the plan needs at the top of its file",
        )
    for method, (expected, signature, how) in _SIGNATURES.items():
        function = _own_names(cls).get(method)
        if not inspect.isfunction(function):
            continue
        positional = [
            p
            for p in list(inspect.signature(function).parameters.values())[1:]
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        # fedward passes every argument: one with a default (Fed-BioMed's
        # training_data(self, batch_size=48)) is not one fedward passes.
        required = [p for p in positional if p.default is p.empty]
        if len(positional) != expected or len(required) != expected:
            shown = ", ".join(["self", *(p.name for p in positional)])
            raise PlanError(
                f"{cls.__name__}.{method}({shown}) has Fed-BioMed's signature; fedward calls "
                f"{signature}",
                hint=how,
            )
    _check_idioms(cls)


def _own_names(cls: type) -> dict[str, object]:
    """What ``cls`` and its bases define, up to fedward's own classes."""
    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("fedward.") or klass is object:
            continue
        found.update(vars(klass))
    return found


def _check_idioms(cls: type) -> None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return  # no source to read: plan_source says why, next
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_self_attribute(node.func):
            used = f"self.{node.func.attr}()"  # type: ignore[attr-defined]
            said = _CALLED.get(used)
        elif _is_self_attribute(node):
            used = f"self.{node.attr}"  # type: ignore[attr-defined]
            said = _READ.get(used)
        elif isinstance(node, ast.Name):
            used, said = node.id, _READ.get(node.id)
        else:
            continue
        if said is not None:
            raise PlanError(
                f"{cls.__name__} uses {used} (line {getattr(node, 'lineno', '?')} of the "
                "class), which is Fed-BioMed's",
                hint=said,
            )


def _is_self_attribute(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )
