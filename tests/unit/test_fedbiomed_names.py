"""A researcher coming from Fed-BioMed types its names: each is refused, before anything
is sent, with an error that says fedward's name (never a bare TypeError on a node)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import torch
from torch import nn

from fedward.errors import PlanError, UnknownAttribute, UnknownImport, UnknownName
from fedward.learning.plan import DatasetView
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.learning.torch_plan import TorchTrainingPlan
from fedward.researcher import Experiment

from .researcher_toy_plan import AddOnePlan
from .test_selection import Harness


@pytest.fixture
def harness() -> Iterator[Harness]:
    setup = Harness()
    setup.add_node("node1")
    yield setup
    setup.close()


@pytest.mark.parametrize(
    ("argument", "fedward_says"),
    [
        ("training_plan_class", "training_plan=MyPlan"),
        ("round_limit", "rounds=N"),
        ("node_selection_strategy", "node_selection=AllNodes()"),
        ("save_breakpoints", "checkpoints=True"),
        ("training_data", "tags=[...] and nodes=[...]"),
        ("experimentation_folder", "experiment_id="),
    ],
)
def test_fedbiomed_experiment_arguments_say_fedwards_name(
    harness: Harness, argument: str, fedward_says: str
) -> None:
    with pytest.raises(UnknownName) as refused:
        harness.experiment(**{argument: None})
    assert f"Experiment({argument}=...) is Fed-BioMed's" in str(refused.value)
    assert fedward_says in str(refused.value)
    assert isinstance(refused.value, TypeError)  # what Python raises for it otherwise
    assert harness.nodes["node1"].train_requests() == []


def test_other_unknown_experiment_arguments_name_the_closest(harness: Harness) -> None:
    with pytest.raises(UnknownName, match="did you mean 'training_args'"):
        harness.experiment(trainig_args={"epochs": 1})
    with pytest.raises(UnknownName, match="keyword arguments only"):
        Experiment(["toy"], AddOnePlan)


@pytest.mark.parametrize(
    ("module", "name", "fedward_says"),
    [
        ("fedward.researcher", "FedAverage", "FedAvg"),
        ("fedward.researcher", "Requests", "the Federation"),
        ("fedward.researcher", "DefaultStrategy", "AllNodes"),
        ("fedward.learning", "FedSGDClassifier", "SGDClassifierPlan"),
        ("fedward.learning", "TorchTrainingPlan", "fedward.learning.torch_plan.TorchTrainingPlan"),
        ("fedward.learning", "DataManager", "training_data(self, dataset) returns"),
    ],
)
def test_fedbiomed_imports_say_where_fedwards_names_are(
    module: str, name: str, fedward_says: str
) -> None:
    with pytest.raises(UnknownImport) as refused:
        exec(f"from {module} import {name}", {})  # the statement a researcher writes
    assert f"{name} is Fed-BioMed's name" in str(refused.value)
    assert fedward_says in str(refused.value)
    assert not hasattr(importlib.import_module(module), "NoSuchName")


@pytest.mark.parametrize(
    ("method", "fedward_says"),
    [
        ("breakpoint", "every round is checkpointed"),
        ("training_plan_approve", "exp.request_approval(description)"),
        ("check_training_plan_status", "exp.plan_status()"),
        ("set_round_limit", "rounds=N"),
    ],
)
def test_fedbiomed_experiment_methods_say_fedwards_name(
    harness: Harness, method: str, fedward_says: str
) -> None:
    experiment = harness.experiment()
    with pytest.raises(UnknownAttribute, match=f"Experiment.{method} is Fed-BioMed's") as refused:
        getattr(experiment, method)()
    assert fedward_says in str(refused.value)
    with pytest.raises(UnknownAttribute, match=r"Experiment\.load_checkpoint"):
        Experiment.load_breakpoint()
    assert not hasattr(experiment, "no_such_thing")


def test_a_training_reply_read_as_a_dict_says_what_to_read(harness: Harness) -> None:
    experiment = harness.experiment(rounds=1)
    experiment.run()
    reply = experiment.training_replies()[0]["node1"]  # Fed-BioMed's shape: round, node
    with pytest.raises(UnknownName, match=r"reply\['timing'\] is Fed-BioMed's") as refused:
        reply["timing"]
    assert "timings" in str(refused.value.hint)


# --- plans written the Fed-BioMed way ---------------------------------------------------------


class InitModelWithArgs(TorchTrainingPlan):
    def init_model(self, model_args: Mapping[str, Any]) -> nn.Module:  # type: ignore[override]
        return nn.Linear(2, 2)

    def training_data(self, dataset: DatasetView) -> Any:
        return None

    def training_step(self, model: nn.Module, inputs: Any, targets: Any) -> torch.Tensor:
        return model(inputs).sum()


class TwoArgumentTrainingStep(TorchTrainingPlan):
    def init_model(self) -> nn.Module:
        return nn.Linear(2, 2)

    def training_data(self, dataset: DatasetView) -> Any:
        return None

    def training_step(self, data: Any, target: Any) -> torch.Tensor:  # type: ignore[override]
        return torch.zeros(())


class TrainingDataWithoutDataset(TorchTrainingPlan):
    def init_model(self) -> nn.Module:
        return nn.Linear(2, 2)

    def training_data(self, batch_size: int = 48) -> Any:  # type: ignore[override]
        return None

    def training_step(self, model: nn.Module, inputs: Any, targets: Any) -> torch.Tensor:
        return model(inputs).sum()


class OptimizerWithoutModel(TwoArgumentTrainingStep):
    def training_step(self, model: nn.Module, inputs: Any, targets: Any) -> torch.Tensor:
        return model(inputs).sum()

    def init_optimizer(self, optimizer_args: Any) -> Any:  # type: ignore[override]
        return None


class WithDependencies(OptimizerWithoutModel):
    def init_optimizer(self, model: nn.Module, optimizer_args: Any) -> Any:
        return torch.optim.SGD(model.parameters(), lr=0.1)

    def init_dependencies(self) -> list[str]:
        return ["import torch"]


class CallsSelfModel(OptimizerWithoutModel):
    def init_optimizer(self, model: nn.Module, optimizer_args: Any) -> Any:
        return torch.optim.Adam(self.model().parameters())


@pytest.mark.parametrize(
    ("plan", "said", "hint"),
    [
        (InitModelWithArgs, "init_model(self, model_args) has Fed-BioMed's", "self.model_args"),
        (TwoArgumentTrainingStep, "fedward calls training_step(self, model, inputs, targets)", ""),
        (TrainingDataWithoutDataset, "training_data(self, batch_size)", "dataset.path"),
        (OptimizerWithoutModel, "init_optimizer(self, model, optimizer_args)", ""),
        (WithDependencies, "init_dependencies is Fed-BioMed's", "top-level imports"),
        (CallsSelfModel, "uses self.model()", "argument of training_step"),
    ],
)
def test_a_plan_with_fedbiomed_signatures_is_refused_before_anything_is_sent(
    harness: Harness, plan: type, said: str, hint: str
) -> None:
    with pytest.raises(PlanError) as refused:
        harness.experiment(training_plan=plan)
    assert said in str(refused.value) and hint in str(refused.value)
    assert harness.nodes["node1"].train_requests() == []


def test_fedwards_own_plans_pass_the_check(harness: Harness) -> None:
    harness.experiment(
        training_plan=SGDClassifierPlan, model_args={"n_features": 3, "classes": [0, 1]}
    )
