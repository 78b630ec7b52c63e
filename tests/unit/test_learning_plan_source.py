from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from fedward.core.plan_digest import normalise_source, plan_digest
from fedward.errors import PlanError
from fedward.learning.plan import NullProgress, TrainingPlan
from fedward.learning.plan_source import load_plan_class, plan_source, source_file_name

PLAN_FILE = '''
"""A researcher's script: a plan plus code that must never reach a node."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.learning.plan import TrainOutcome, TrainingPlan

print("running the experiment")  # script code
DATA = json.loads("[1, 2, 3]")


class ConstantPlan(TrainingPlan):
    """Returns its parameters plus one."""

    framework = "numpy"

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.full(3, float(seed))}

    def train(self, params, dataset, training_args: Mapping[str, Any], progress) -> TrainOutcome:
        return TrainOutcome({"w": params["w"] + 1}, sample_count=7, metrics={"m": 1.0})


if __name__ == "__main__":
    print(ConstantPlan().init_params())
'''


def import_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def researcher_module(tmp_path: Path) -> ModuleType:
    path = tmp_path / "my_experiment.py"
    path.write_text(PLAN_FILE)
    return import_file(path, "my_experiment_for_plan_source_test")


def test_plan_source_holds_imports_and_class_but_no_script_code(
    researcher_module: ModuleType,
) -> None:
    source = plan_source(researcher_module.ConstantPlan)
    assert "import numpy as np" in source
    assert "from __future__ import annotations" in source.splitlines()[0]
    assert "class ConstantPlan(TrainingPlan):" in source
    assert "print(" not in source
    assert "DATA" not in source
    assert "__main__" not in source


def test_plan_source_round_trips_through_load_plan_class(
    researcher_module: ModuleType, tmp_path: Path
) -> None:
    source = plan_source(researcher_module.ConstantPlan)
    cls = load_plan_class(source, "ConstantPlan", tmp_path / "work")
    plan = cls({"x": 1})
    params = plan.init_params(seed=2)
    outcome = plan.train(params, None, {}, NullProgress())  # type: ignore[arg-type]
    assert outcome.params["w"].tolist() == [3.0, 3.0, 3.0]
    assert plan.model_args == {"x": 1}
    # What is imported is the canonical text, the one the digest binds.
    canonical = normalise_source(source)
    assert (tmp_path / "work" / source_file_name(canonical)).read_text() == canonical


def test_plan_source_is_stable_so_its_digest_is(researcher_module: ModuleType) -> None:
    cls = researcher_module.ConstantPlan
    assert plan_digest(plan_source(cls)) == plan_digest(plan_source(cls))


def test_loading_the_same_source_twice_gives_independent_modules(tmp_path: Path) -> None:
    source = plan_source(_shipped_like_plan(tmp_path))
    first = load_plan_class(source, "ConstantPlan", tmp_path / "w")
    second = load_plan_class(source, "ConstantPlan", tmp_path / "w")
    assert first is not second
    assert first.__module__ != second.__module__


def _shipped_like_plan(tmp_path: Path) -> type[TrainingPlan]:
    path = tmp_path / "shipped_like.py"
    path.write_text(PLAN_FILE)
    return import_file(path, "shipped_like_for_plan_source_test").ConstantPlan  # type: ignore[no-any-return]


def test_class_without_source_file_is_refused_with_a_clear_message() -> None:
    namespace: dict[str, object] = {
        "__module__": "not_a_real_module_anywhere",
        "init_params": lambda self, seed=0: {},
        "train": lambda self, *a: None,
    }
    repl_class = type("ReplPlan", (TrainingPlan,), namespace)
    with pytest.raises(PlanError, match="cannot find the source of plan class 'ReplPlan'"):
        plan_source(repl_class)


def test_plan_using_a_module_level_helper_is_refused_before_sending(tmp_path: Path) -> None:
    path = tmp_path / "uses_helper.py"
    path.write_text(
        textwrap.dedent(
            """
            from fedward.learning.plan import TrainingPlan

            SCALE = 3.0

            def helper(x):
                return x * SCALE

            class HelperPlan(TrainingPlan):
                def init_params(self, seed=0):
                    return {"w": helper(seed)}

                def train(self, params, dataset, training_args, progress):
                    raise NotImplementedError
            """
        )
    )
    module = import_file(path, "uses_helper_for_plan_source_test")
    with pytest.raises(PlanError, match="helper"):
        plan_source(module.HelperPlan)


def test_relative_import_in_plan_file_is_refused(tmp_path: Path) -> None:
    package = tmp_path / "relpkg_for_plan_source"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sibling.py").write_text("VALUE = 1\n")
    (package / "plan.py").write_text(
        "from fedward.learning.plan import TrainingPlan\n"
        "from .sibling import VALUE\n\n"
        "class RelPlan(TrainingPlan):\n"
        "    def init_params(self, seed=0):\n        return {}\n"
        "    def train(self, params, dataset, training_args, progress):\n        return None\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("relpkg_for_plan_source.plan")
    finally:
        sys.path.remove(str(tmp_path))
    with pytest.raises(PlanError, match="relative import"):
        plan_source(module.RelPlan)


def test_nested_plan_class_is_refused() -> None:
    class Inner(TrainingPlan):
        def init_params(self, seed: int = 0) -> dict:  # type: ignore[type-arg]
            return {}

        def train(self, *args: object) -> None:  # type: ignore[override]
            return None

    with pytest.raises(PlanError, match="nested"):
        plan_source(Inner)


@pytest.mark.parametrize(
    ("source", "class_name", "message"),
    [
        ("class Broken(:\n    pass\n", "Broken", "not valid Python: line 1"),
        ("import fedward_no_such_package_xyz\n", "P", "fedward_no_such_package_xyz"),
        ("raise RuntimeError('boom at import')\n", "P", "RuntimeError: boom at import"),
        ("x = 1\n", "P", "defines no 'P'"),
        ("class P:\n    pass\n", "P", "not a TrainingPlan subclass"),
        ("P = 3\n", "P", "not a TrainingPlan subclass"),
        (
            "from fedward.learning.plan import TrainingPlan\nclass P(TrainingPlan):\n    pass\n",
            "P",
            "does not implement: init_params, train",
        ),
        ("x = 1\n", "not an identifier", "not a Python identifier"),
    ],
)
def test_bad_plan_sources_become_plan_errors(
    tmp_path: Path, source: str, class_name: str, message: str
) -> None:
    with pytest.raises(PlanError, match=message) as caught:
        load_plan_class(source, class_name, tmp_path)
    assert "Traceback" not in str(caught.value)
    assert str(tmp_path) not in str(caught.value)


def test_failed_load_leaves_no_module_behind(tmp_path: Path) -> None:
    before = set(sys.modules)
    with pytest.raises(PlanError):
        load_plan_class("raise ValueError('no')\n", "P", tmp_path)
    assert not [m for m in set(sys.modules) - before if m.startswith("fedward_loaded_plan_")]
