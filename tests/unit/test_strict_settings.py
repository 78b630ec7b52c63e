"""No setting is silently ignored: unknown keys are refused with the closest valid name,
and the settings the README and the demo use really act on training."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.data import breast_cancer_split
from fedward.errors import ConfigError, PlanError, ValidationError
from fedward.learning.plan import DatasetView, NullProgress
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.learning.plans.torch_cnn import TorchCNNPlan
from fedward.researcher.aggregators import aggregator_from_config
from fedward.researcher.experiment_file import read_experiment_file

from .test_selection import Harness

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def harness() -> Iterator[Harness]:
    setup = Harness()
    setup.add_node("node1")
    yield setup
    setup.close()


def experiment_with(harness: Harness, **settings: Any) -> None:
    harness.experiment(training_plan=SGDClassifierPlan, **settings)


@pytest.mark.parametrize(
    ("training_args", "said"),
    [
        ({"batchsize": 16}, "unknown training argument 'batchsize'; did you mean 'batch_size'?"),
        ({"epoch": 2}, "did you mean 'epochs'?"),
        ({"learning_rate": 0.01}, "optimizer_args={'lr': 0.01}"),
        ({"dry_run": True}, "num_updates=1 trains on a single batch"),
        ({"loader_args": {"batch_size": 48}}, "batch_size=... is a training argument"),
        ({"optimizer_args": {"rl": 0.1}}, "unknown SGDClassifierPlan optimizer argument 'rl'"),
    ],
)
def test_an_unknown_training_arg_is_refused_before_anything_is_sent(
    harness: Harness, training_args: dict[str, Any], said: str
) -> None:
    model_args = {"n_features": 30, "classes": [0, 1]}
    with pytest.raises(ValidationError) as refused:
        experiment_with(harness, model_args=model_args, training_args=training_args)
    assert said in str(refused.value)
    assert harness.nodes["node1"].train_requests() == []


@pytest.mark.parametrize(
    ("model_args", "said"),
    [
        ({"n_feature": 30}, "'n_feature'; did you mean 'n_features'?"),
        ({"max_iter": 5}, "max_iter is a parameter of SGDClassifier: estimator={'max_iter': ...}"),
        ({"eta0": 0.1}, "optimizer_args={'lr': ...}"),
        ({"n_classes": 2}, "classes=[0, 1, ...]"),
    ],
)
def test_an_unknown_model_arg_of_a_shipped_plan_is_refused(
    harness: Harness, model_args: dict[str, Any], said: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        experiment_with(harness, model_args={"n_features": 30, "classes": [0, 1], **model_args})
    assert said in str(refused.value)


def test_torch_plans_check_their_model_and_optimizer_args() -> None:
    with pytest.raises(ValidationError, match="did you mean 'n_classes'"):
        TorchCNNPlan.check_model_args({"num_classes": 10})
    with pytest.raises(ValidationError, match="did you mean 'weight_decay'"):
        TorchCNNPlan.check_training_args({"optimizer_args": {"weight_decy": 0.1}})
    TorchCNNPlan.check_training_args({"optimizer_args": {"lr": 0.1, "betas": [0.9, 0.99]}})


def test_the_sklearn_learning_rate_has_one_name() -> None:
    with pytest.raises(PlanError, match=r"optimizer_args=\{'lr'"):
        SGDClassifierPlan(
            {"n_features": 2, "classes": [0, 1], "estimator": {"eta0": 1}}
        ).new_estimator()


def test_unknown_experiment_file_keys_and_aggregator_args_name_the_closest(
    tmp_path: Path,
) -> None:
    base = 'plan = "fedward.learning.plans.sklearn_classifier:SGDClassifierPlan"\ntags = ["x"]\n'
    path = tmp_path / "experiment.toml"
    for extra, said in [
        ("round = 3\n", "did you mean 'rounds'?"),
        ("[selection]\nfraction = 0.5\nminimun = 2\n", "did you mean 'minimum'?"),
    ]:
        path.write_text(base + extra)
        with pytest.raises(ConfigError, match=said):
            read_experiment_file(path)
    with pytest.raises(ValidationError, match="did you mean 'mu'"):
        aggregator_from_config("fedprox", {"muu": 0.1})


# --- the settings the README and the demo show really act ---------------------------------


def readme_experiment_args() -> tuple[dict[str, Any], dict[str, Any]]:
    """(model_args, training_args) of the ``Experiment(...)`` in the README's researcher API."""
    text = README.read_text()
    section = text[text.index("## The researcher API") :]
    code = section[section.index("```python") + len("```python") : section.index("```\n", 10)]
    call = next(
        node
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Experiment"
    )
    found = {
        k.arg: ast.literal_eval(k.value)
        for k in call.keywords
        if k.arg in ("model_args", "training_args")
    }
    return found["model_args"], found["training_args"]


@pytest.fixture(scope="module")
def breast_cancer_view(tmp_path_factory: pytest.TempPathFactory) -> DatasetView:
    split = breast_cancer_split(tmp_path_factory.mktemp("data"), 2)
    return DatasetView(dataset_id="ds-1", data_type="csv", path=split.node_files[0])


def trained(model_args: dict[str, Any], training_args: dict[str, Any], view: DatasetView) -> bytes:
    SGDClassifierPlan.check_training_args(training_args)
    plan = SGDClassifierPlan(model_args)
    plan.node_id, plan.round_index = "node1", 0
    outcome = plan.train(plan.init_params(), view, training_args, NullProgress())
    return b"".join(outcome.params[name].tobytes() for name in sorted(outcome.params))


@pytest.mark.parametrize("source", ["README", "demo"])
def test_the_readme_and_demo_train_with_the_learning_rate_they_name(
    source: str, breast_cancer_view: DatasetView
) -> None:
    if source == "README":
        model_args, training_args = readme_experiment_args()
    else:
        model_args, training_args = {"n_features": 30, "classes": [0, 1]}, demo_training_args()
    lr = training_args["optimizer_args"]["lr"]
    as_written = trained(model_args, training_args, breast_cancer_view)
    ten_times = {**training_args, "optimizer_args": {"lr": lr * 10}}
    without = {k: v for k, v in training_args.items() if k != "optimizer_args"}
    assert as_written != trained(model_args, ten_times, breast_cancer_view)
    assert as_written != trained(model_args, without, breast_cancer_view)  # not the default
    assert as_written == trained(model_args, training_args, breast_cancer_view)
    assert np.isfinite(np.frombuffer(as_written, dtype=np.float64)).all()
