"""``experiment.toml``: an experiment described in a file, for ``fedward researcher run``.

::

    plan = "fedward.learning.plans.sklearn_classifier:SGDClassifierPlan"  # or "my_plan.py:MyPlan"
    tags = ["breast-cancer"]
    rounds = 5
    aggregator = "fedavg"          # fedprox, scaffold, fedadam, fedyogi, fedadagrad,
                                   # median, trimmed_mean, krum
    seed = 0
    round_timeout_s = 600
    min_replies = 1
    update_codec = "float16"       # optional: none, float16, bfloat16, int8
    nodes = ["node1", "node2"]     # optional: only these nodes
    experiment_id = "bc-2024-01"   # optional (needed to --resume)
    tensorboard = "runs"           # optional: TensorBoard log folder
    plot = "metrics.png"           # optional: PNG of the metrics at the end
    save = "final.safetensors"     # optional: the final global parameters

    [model_args]                   # given to the plan
    [training_args]                # sent to every node
    [aggregator_args]              # e.g. mu = 0.01 for fedprox
    [selection]                    # optional: fraction = 0.5, minimum = 2

Relative paths are relative to the file. A plan given as a ``.py`` file is the
researcher's own code, imported here like any module. A key not listed here (in any
table) is an error that names the closest valid key: nothing is silently ignored.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedward.config.loader import read_toml
from fedward.errors import ConfigError, PlanError
from fedward.learning.plan import TrainingPlan
from fedward.learning.setting_names import check_names
from fedward.researcher.aggregators import aggregator_from_config
from fedward.researcher.selection import NodeSelection, RandomFraction

_KEYS = {
    "plan",
    "tags",
    "rounds",
    "aggregator",
    "seed",
    "round_timeout_s",
    "min_replies",
    "update_codec",
    "nodes",
    "experiment_id",
    "tensorboard",
    "plot",
    "save",
    "model_args",
    "training_args",
    "aggregator_args",
    "selection",
}


_SELECTION_KEYS = {"fraction", "minimum"}


@dataclass
class ExperimentFile:
    path: Path
    plan: type[TrainingPlan]
    settings: dict[str, Any] = field(default_factory=dict)
    plot: Path | None = None
    save: Path | None = None


def load_plan(reference: str, base: Path) -> type[TrainingPlan]:
    """``package.module:Class`` or ``path/to/file.py:Class``."""
    location, _, class_name = reference.rpartition(":")
    if not location or not class_name:
        raise ConfigError(f"plan {reference!r} must look like 'module:Class' or 'file.py:Class'")
    try:
        if location.endswith(".py"):
            path = (base / location).resolve()
            name = "fedward_researcher_plan_" + re.sub(r"\W", "_", path.stem)
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"cannot load plan file {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # inspect (hence plan_source) finds the class by module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(location)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError, OSError) as exc:
        raise PlanError(f"cannot load plan {reference}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, TrainingPlan)):
        raise PlanError(f"{reference} is not a TrainingPlan subclass")
    return cls


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def read_experiment_file(path: Path) -> ExperimentFile:
    path = Path(path)
    data = read_toml(path)
    check_names(f"key in {path}:", data, _KEYS, error=ConfigError)
    if "plan" not in data or "tags" not in data:
        raise ConfigError(f"{path}: 'plan' and 'tags' are required")
    base = path.parent
    selection: NodeSelection | None = None
    if "selection" in data:
        options = _table(data, "selection")
        check_names(f"[selection] key in {path}:", options, _SELECTION_KEYS, error=ConfigError)
        if "fraction" not in options:
            raise ConfigError(f"{path}: [selection] needs fraction (and optionally minimum)")
        selection = RandomFraction(**options)
    settings: dict[str, Any] = {
        "tags": list(data["tags"]),
        "model_args": _table(data, "model_args"),
        "training_args": _table(data, "training_args"),
        "aggregator": aggregator_from_config(
            str(data.get("aggregator", "fedavg")), _table(data, "aggregator_args")
        ),
        "node_selection": selection,
    }
    keys = ("rounds", "seed", "round_timeout_s", "min_replies", "nodes", "experiment_id")
    for key in (*keys, "update_codec"):
        if key in data:
            settings[key] = data[key]
    if "tensorboard" in data:
        settings["tensorboard"] = base / str(data["tensorboard"])
    return ExperimentFile(
        path=path,
        plan=load_plan(str(data["plan"]), base),
        settings=settings,
        plot=base / str(data["plot"]) if "plot" in data else None,
        save=base / str(data["save"]) if "save" in data else None,
    )
