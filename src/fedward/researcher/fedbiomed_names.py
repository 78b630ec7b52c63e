"""Fed-BioMed's researcher names, refused with the name fedward has for the same thing.

fedward replaces the Fed-BioMed deployment its users know, and they type its names:
``Experiment(training_plan_class=..., round_limit=...)``, ``FedAverage()``,
``exp.breakpoint()``. Each would be a bare ``TypeError`` or ``AttributeError``; here
each is an ``UnknownName`` that says fedward's name, raised before anything is sent.
``docs/from-fedbiomed.md`` maps every name, and ports Fed-BioMed's getting-started
notebook cell by cell.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from fedward.errors import UnknownAttribute, UnknownImport, UnknownName
from fedward.learning.setting_names import closest

#: Fed-BioMed's ``Experiment`` arguments -> fedward's.
EXPERIMENT_ARGUMENTS: Mapping[str, str] = {
    "training_plan_class": "training_plan=MyPlan (the class itself)",
    "training_plan_path": "training_plan=MyPlan: fedward sends the class's source, read from "
    "its file or notebook cell",
    "round_limit": "rounds=N",
    "node_selection_strategy": "node_selection=AllNodes() (the default) or RandomFraction(...)",
    "save_breakpoints": "checkpoints=True (the default: every round is saved)",
    "experimentation_folder": "experiment_id='name' (and state_dir= for where checkpoints go)",
    "training_data": "tags=[...] and nodes=[...]: fedward finds the datasets itself "
    "(exp.nodes() lists them)",
    "secagg": "nothing: fedward offers no secure aggregation",
}

#: Fed-BioMed's ``Experiment`` methods -> fedward's.
EXPERIMENT_METHODS: Mapping[str, str] = {
    "breakpoint": "nothing to call: every round is checkpointed (exp.last_checkpoint)",
    "load_breakpoint": "Experiment.load_checkpoint('latest', experiment_id=...)",
    "training_plan_approve": "exp.request_approval(description)",
    "check_training_plan_status": "exp.plan_status()",
    "set_round_limit": "rounds=N (or Experiment.load_checkpoint(..., rounds=N))",
    "round_limit": "exp.rounds",
    "round_current": "exp.round_index",
    "set_training_args": "training_args={...} when the Experiment is made",
    "set_model_args": "model_args={...} when the Experiment is made",
    "set_aggregator": "aggregator=FedAvg() when the Experiment is made",
    "set_node_selection_strategy": "node_selection=... when the Experiment is made",
    "training_plan_file": "nothing: the plan's source is sent from its class",
    "experimentation_folder": "exp.checkpoint_dir()",
    "info": "exp.nodes(), exp.plan_status(), exp.history",
    "job": "exp.federation",
}

#: Names Fed-BioMed's users import for the researcher -> fedward's.
RESEARCHER_NAMES: Mapping[str, str] = {
    "FedAverage": "FedAvg (from fedward.researcher import FedAvg)",
    "Scaffold": "Scaffold (from fedward.researcher import Scaffold)",
    "DefaultStrategy": "AllNodes (from fedward.researcher import AllNodes)",
    "Requests": "the Federation: exp.federation, or fedward.researcher.connect.connect(); "
    "its list_datasets() and search(tags), or `fedward researcher nodes`",
}


def researcher_name(name: str) -> UnknownImport | None:
    """The error for Fed-BioMed's ``name`` looked up in ``fedward.researcher``, if it is one."""
    where = RESEARCHER_NAMES.get(name)
    if where is None or name == "Scaffold":  # same name: fedward exports it
        return None
    return UnknownImport(f"{name} is Fed-BioMed's name; fedward's is {where}")


def check_experiment_call(
    init: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """``UnknownName`` for positional arguments, Fed-BioMed's argument names and any other
    name ``init`` (``Experiment.__init__``) does not take, naming the closest."""
    accepted = [name for name in inspect.signature(init).parameters if name != "self"]
    if args:
        raise UnknownName(
            "Experiment takes keyword arguments only",
            hint="Experiment(tags=[...], training_plan=MyPlan, rounds=..., ...)",
        )
    for name in sorted(kwargs):
        if name in accepted:
            continue
        if name in EXPERIMENT_ARGUMENTS:
            raise UnknownName(
                f"Experiment({name}=...) is Fed-BioMed's; fedward's is {EXPERIMENT_ARGUMENTS[name]}"
            )
        near = closest(name, accepted)
        raise UnknownName(
            f"Experiment has no argument {name!r}" + (f"; did you mean {near!r}?" if near else ""),
            hint="its arguments: " + ", ".join(accepted),
        )


def experiment_attribute(name: str) -> UnknownAttribute:
    """The error for ``Experiment.<name>``: fedward's name when it is Fed-BioMed's."""
    if name in EXPERIMENT_METHODS:
        return UnknownAttribute(
            f"Experiment.{name} is Fed-BioMed's; fedward's is {EXPERIMENT_METHODS[name]}"
        )
    return UnknownAttribute(f"'Experiment' object has no attribute {name!r}")


class ExperimentType(type):
    """``Experiment``'s metaclass: Fed-BioMed's constructor arguments and class methods
    (``Experiment.load_breakpoint``) are refused with fedward's names."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        check_experiment_call(cls.__init__, args, kwargs)  # type: ignore[misc]
        return super().__call__(**kwargs)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise experiment_attribute(name)
