"""SCAFFOLD's client step in ``TorchTrainingPlan`` (option II of Karimireddy et al., 2020).

The plan is checked against a hand-written torch loop of the paper's update
``y <- y - lr * (grad(y) + c - c_i)`` and its control update
``c_i_new - c_i = (x - y_K) / (K * lr) - c``, and against the real ``Scaffold``
aggregator's expectations (names, dtypes, buffers left out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from fedward.core.params import Params
from fedward.errors import PlanError
from fedward.learning.plan import (
    SCAFFOLD_DELTA_CONTROL,
    SCAFFOLD_NODE_CONTROL,
    SCAFFOLD_SERVER_CONTROL,
    DatasetView,
    NullProgress,
)
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.learning.torch_plan import TorchTrainingPlan, load_model_params
from fedward.researcher.aggregators import Scaffold

FEATURES = 3
ROWS = 40
LR = 0.1


class LinearRegressionPlan(TorchTrainingPlan):
    """A linear model on an ``.npz`` file of ``x`` and ``y``; Adam unless SCAFFOLD runs."""

    task = "regression"

    def init_model(self) -> nn.Module:
        features = int(self.model_args.get("features", FEATURES))
        if self.model_args.get("batchnorm"):
            return nn.Sequential(nn.Linear(features, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
        return nn.Linear(features, 1)

    def training_data(self, dataset: DatasetView) -> tuple[np.ndarray, np.ndarray]:
        with np.load(dataset.path, allow_pickle=False) as arrays:
            return arrays["x"], arrays["y"]

    def training_step(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return nn.functional.mse_loss(model(inputs).squeeze(-1), targets)

    def init_optimizer(
        self, model: nn.Module, optimizer_args: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        # Not plain SGD on purpose: SCAFFOLD must not use it.
        return torch.optim.Adam(model.parameters(), lr=float(optimizer_args.get("lr", 1e-3)))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_dataset(path: Path, x: np.ndarray, y: np.ndarray) -> DatasetView:
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.float32))
    return DatasetView(dataset_id=f"ds-{path.stem}", data_type="npz", path=path)


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetView:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(ROWS, FEATURES))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=ROWS)
    return write_dataset(tmp_path / "node.npz", x, y)


def controls(params: Params, seed: int) -> Params:
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(scale=0.5, size=value.shape).astype(value.dtype)
        for name, value in params.items()
    }


def full_batch_args(updates: int, **optimizer_args: Any) -> dict[str, Any]:
    return {
        "batch_size": ROWS,
        "num_updates": updates,
        "test_ratio": 0.0,
        "optimizer_args": {"lr": LR, **optimizer_args},
    }


def manual_scaffold_loop(
    plan: LinearRegressionPlan,
    params: Params,
    dataset: DatasetView,
    correction: Params,
    steps: int,
) -> tuple[Params, Params]:
    """The paper's local loop on the full batch: (final params, mean raw gradient)."""
    model = plan.init_model()
    load_model_params(model, params)
    x, y = (torch.from_numpy(a) for a in plan.training_data(dataset))
    gradient_sum = {name: np.zeros(p.shape) for name, p in model.named_parameters()}
    for _ in range(steps):
        model.zero_grad()
        plan.training_step(model, x, y).backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                assert p.grad is not None
                gradient_sum[name] += p.grad.numpy()
                p.sub_(LR * (p.grad + torch.from_numpy(correction[name])))
    final = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    return final, {name: total / steps for name, total in gradient_sum.items()}


def test_local_steps_follow_the_corrected_gradient_and_return_the_option_ii_control(
    dataset: DatasetView,
) -> None:
    plan = LinearRegressionPlan()
    params = plan.init_params(seed=0)
    server, node = controls(params, seed=2), controls(params, seed=3)
    plan.received_extras = {SCAFFOLD_SERVER_CONTROL: server, SCAFFOLD_NODE_CONTROL: node}
    steps = 5

    outcome = plan.train(params, dataset, full_batch_args(steps), NullProgress())

    correction = {name: server[name] - node[name] for name in params}
    expected, mean_gradient = manual_scaffold_loop(plan, params, dataset, correction, steps)
    uncorrected, _ = manual_scaffold_loop(
        plan, params, dataset, {n: np.zeros_like(v) for n, v in params.items()}, steps
    )
    for name in params:
        np.testing.assert_allclose(outcome.params[name], expected[name], rtol=1e-5, atol=1e-6)
        assert not np.allclose(outcome.params[name], uncorrected[name], atol=1e-3)

    delta = outcome.extras[SCAFFOLD_DELTA_CONTROL]
    assert set(outcome.extras) == {SCAFFOLD_DELTA_CONTROL}
    assert set(delta) == set(params)
    for name, x in params.items():
        assert delta[name].dtype == x.dtype == np.float32
        assert delta[name].shape == x.shape
        formula = (x.astype(np.float64) - outcome.params[name]) / (steps * LR) - server[name]
        np.testing.assert_allclose(delta[name], formula, rtol=1e-5, atol=1e-6)
        # Option II's meaning: c_i_new = c_i + delta is the mean raw local gradient.
        np.testing.assert_allclose(node[name] + delta[name], mean_gradient[name], atol=2e-4)


def test_control_counts_every_local_step_across_epochs_and_batches(
    dataset: DatasetView,
) -> None:
    plan = LinearRegressionPlan()
    params = plan.init_params(seed=0)
    server = controls(params, seed=4)
    plan.received_extras = {
        SCAFFOLD_SERVER_CONTROL: server,
        SCAFFOLD_NODE_CONTROL: controls(params, seed=5),
    }
    # 40 rows in batches of 16: 3 steps per epoch, 2 epochs.
    args = {"batch_size": 16, "epochs": 2, "test_ratio": 0.0, "optimizer_args": {"lr": LR}}

    outcome = plan.train(params, dataset, args, NullProgress())

    delta = outcome.extras[SCAFFOLD_DELTA_CONTROL]
    for name, x in params.items():
        formula = (x.astype(np.float64) - outcome.params[name]) / (6 * LR) - server[name]
        np.testing.assert_allclose(delta[name], formula, rtol=1e-5, atol=1e-6)


def test_without_scaffold_extras_the_plan_uses_its_own_optimizer_and_returns_no_control(
    dataset: DatasetView,
) -> None:
    plan = LinearRegressionPlan()
    params = plan.init_params(seed=0)
    zeros = {n: np.zeros_like(v) for n, v in params.items()}

    outcome = plan.train(params, dataset, full_batch_args(3), NullProgress())

    sgd, _ = manual_scaffold_loop(plan, params, dataset, zeros, 3)
    assert outcome.extras == {}
    assert not np.allclose(outcome.params["weight"], sgd["weight"], atol=1e-4)  # Adam's step


def test_batchnorm_controls_leave_buffers_out_and_suit_the_real_aggregator(
    dataset: DatasetView,
) -> None:
    plan = LinearRegressionPlan({"batchnorm": True})
    params = plan.init_params(seed=0)
    aggregator = Scaffold()
    aggregator.begin_round(params, round_index=0, population=2)
    plan.received_extras = aggregator.extras_for_node("node-a")
    assert set(plan.received_extras[SCAFFOLD_SERVER_CONTROL]) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "2.weight",
        "2.bias",
    }

    outcome = plan.train(params, dataset, full_batch_args(4), NullProgress())

    delta = outcome.extras[SCAFFOLD_DELTA_CONTROL]
    assert set(delta) == set(plan.received_extras[SCAFFOLD_SERVER_CONTROL])
    aggregator.add("node-a", outcome.params, outcome.sample_count, extras=outcome.extras)
    aggregator.finish()
    np.testing.assert_allclose(aggregator.node_control("node-a")["2.weight"], delta["2.weight"])
    np.testing.assert_allclose(aggregator.control["2.weight"], delta["2.weight"] / 2, rtol=1e-6)


@pytest.mark.parametrize(
    ("optimizer_args", "refusal"),
    [
        ({"lr": LR, "momentum": 0.9}, "plain SGD, but optimizer_args also set momentum"),
        ({"lr": LR, "betas": [0.9, 0.99]}, "also set betas"),
        ({}, "needs its learning rate"),
        ({"lr": 0}, "lr must be positive"),
        ({"lr": "fast"}, "lr must be a finite number"),
    ],
)
def test_scaffold_refuses_anything_but_plain_sgd(
    dataset: DatasetView, optimizer_args: dict[str, Any], refusal: str
) -> None:
    plan = LinearRegressionPlan()
    params = plan.init_params(seed=0)
    plan.received_extras = {SCAFFOLD_SERVER_CONTROL: params, SCAFFOLD_NODE_CONTROL: params}
    args = {**full_batch_args(2), "optimizer_args": optimizer_args}
    with pytest.raises(PlanError, match=refusal):
        plan.train(params, dataset, args, NullProgress())


def test_weight_decay_is_part_of_the_plain_sgd_step(dataset: DatasetView) -> None:
    plan = LinearRegressionPlan()
    params = plan.init_params(seed=0)
    zeros = {n: np.zeros_like(v) for n, v in params.items()}
    plan.received_extras = {SCAFFOLD_SERVER_CONTROL: zeros, SCAFFOLD_NODE_CONTROL: zeros}
    outcome = plan.train(params, dataset, full_batch_args(2, weight_decay=0.5), NullProgress())
    without = LinearRegressionPlan()
    without.received_extras = plan.received_extras
    plain = without.train(params, dataset, full_batch_args(2), NullProgress())
    assert not np.allclose(outcome.params["weight"], plain.params["weight"], atol=1e-4)


def misfit_controls(params: Params) -> list[tuple[dict[str, Params], str]]:
    zeros = {n: np.zeros_like(v) for n, v in params.items()}
    return [
        ({SCAFFOLD_SERVER_CONTROL: zeros}, "but not 'scaffold_node_control'"),
        ({SCAFFOLD_NODE_CONTROL: zeros}, "but not 'scaffold_server_control'"),
        (
            {SCAFFOLD_SERVER_CONTROL: {"weight": zeros["weight"]}, SCAFFOLD_NODE_CONTROL: zeros},
            r"server control c does not fit .* missing \['bias'\]",
        ),
        (
            {
                SCAFFOLD_SERVER_CONTROL: zeros,
                SCAFFOLD_NODE_CONTROL: {**zeros, "buffer:running_mean": np.zeros(1)},
            },
            r"node control c_i does not fit .* unexpected \['buffer:running_mean'\]",
        ),
        (
            {SCAFFOLD_SERVER_CONTROL: {**zeros, "bias": np.zeros(2)}, SCAFFOLD_NODE_CONTROL: zeros},
            r"'bias' has shape \[2\], the parameter has \[1\]",
        ),
        (
            {
                SCAFFOLD_SERVER_CONTROL: zeros,
                SCAFFOLD_NODE_CONTROL: {**zeros, "bias": np.array([np.nan], np.float32)},
            },
            "NaN or infinite",
        ),
    ]


def test_misfit_controls_are_refused_with_what_is_wrong(dataset: DatasetView) -> None:
    plan = LinearRegressionPlan()
    params = plan.init_params(seed=0)
    for extras, refusal in misfit_controls(params):
        plan.received_extras = extras
        with pytest.raises(PlanError, match=refusal):
            plan.train(params, dataset, full_batch_args(1), NullProgress())


def test_sklearn_plans_refuse_scaffold(tmp_path: Path) -> None:
    plan = SGDClassifierPlan({"n_features": 2, "classes": [0, 1]})
    params = plan.init_params()
    plan.received_extras = {SCAFFOLD_SERVER_CONTROL: params, SCAFFOLD_NODE_CONTROL: params}
    view = DatasetView(dataset_id="ds-csv", data_type="csv", path=tmp_path / "absent.csv")
    with pytest.raises(PlanError, match="SCAFFOLD needs a plan trained with plain SGD steps"):
        plan.train(params, view, {}, NullProgress())
