from __future__ import annotations

import gzip
import struct
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits
from torch import nn

from fedward.core.aggregation import WeightedMean
from fedward.core.params import Params
from fedward.errors import PlanError
from fedward.learning.plan import BUFFER_PREFIX, DatasetView, NullProgress, TrainingPlan
from fedward.learning.plan_source import load_plan_class, plan_source
from fedward.learning.plans.torch_cnn import TorchCNNPlan
from fedward.learning.plans.torch_mlp import TorchMLPPlan
from fedward.learning.torch_plan import load_model_params, model_params
from fedward.learning.training_args import held_out_split


class RecordingProgress:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []

    def scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.append((name, value, step))

    def log(self, level: str, message: str) -> None:
        pass


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    # These models are tiny: one thread is fastest and does not fight parallel test runs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_csv(path: Path, features: np.ndarray, target: np.ndarray) -> DatasetView:
    lines = [",".join([f"f{j}" for j in range(features.shape[1])] + ["label"])]
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(label)])
        for row, label in zip(features, target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return DatasetView(dataset_id=f"ds-{path.stem}", data_type="csv", path=path)


def split_nodes(
    folder: Path, features: np.ndarray, target: np.ndarray, nodes: int
) -> tuple[list[DatasetView], np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(target))
    held_out, rest = order[: len(order) // 5], order[len(order) // 5 :]
    views = [
        write_csv(folder / f"node{i}.csv", features[part], target[part])
        for i, part in enumerate(np.array_split(rest, nodes))
    ]
    return views, features[held_out], target[held_out]


def fedavg(plan: TrainingPlan, views: list[DatasetView], rounds: int, args: dict) -> Params:
    params = plan.init_params(seed=0)
    for round_index in range(rounds):
        mean = WeightedMean()
        for view in views:
            # What a node's worker sets: the node's id (here the dataset's) and the round.
            plan.node_id, plan.round_index = view.dataset_id, round_index
            outcome = plan.train(params, view, args, NullProgress())
            mean.add(outcome.params, outcome.sample_count)
        params = mean.result()
    return params


def test_batchnorm_buffers_travel_with_the_buffer_prefix() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = model_params(model)
    assert set(params) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        f"{BUFFER_PREFIX}1.running_mean",
        f"{BUFFER_PREFIX}1.running_var",
        f"{BUFFER_PREFIX}1.num_batches_tracked",
    }
    assert params["0.weight"].dtype == np.float32
    changed = {name: value + 1 for name, value in params.items()}
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    load_model_params(other, changed)
    np.testing.assert_array_equal(
        other[1].running_mean.numpy(), params[f"{BUFFER_PREFIX}1.running_mean"] + 1
    )
    assert int(other[1].num_batches_tracked) == 1


def test_non_persistent_buffers_do_not_travel() -> None:
    model = nn.Linear(2, 2)
    model.register_buffer("scratch", torch.zeros(3), persistent=False)
    assert set(model_params(model)) == {"weight", "bias"}


def test_parameters_of_another_model_are_refused() -> None:
    params = model_params(nn.Linear(3, 2))
    with pytest.raises(PlanError, match="missing"):
        load_model_params(nn.Sequential(nn.Linear(3, 2)), params)
    with pytest.raises(PlanError, match=r"shape \[2, 3\].*needs \[2, 4\]"):
        load_model_params(nn.Linear(4, 2), params)


def test_init_params_is_seeded_and_leaves_the_global_rng_alone() -> None:
    plan = TorchMLPPlan({"n_features": 5, "classes": [0, 1]})
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = plan.init_params(seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    second = plan.init_params(seed=7)
    third = plan.init_params(seed=8)
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert not np.array_equal(first["1.weight"], third["1.weight"])


@pytest.fixture(scope="module")
def breast_cancer(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[DatasetView], np.ndarray, np.ndarray]:
    features, target = load_breast_cancer(return_X_y=True)
    return split_nodes(tmp_path_factory.mktemp("bc"), features, target, nodes=3)


def test_federated_mlp_learns_breast_cancer(
    breast_cancer: tuple[list[DatasetView], np.ndarray, np.ndarray],
) -> None:
    views, test_x, test_y = breast_cancer
    plan = TorchMLPPlan({"n_features": 30, "classes": [0, 1], "hidden": [16]})
    params = fedavg(plan, views, rounds=3, args={"batch_size": 16, "optimizer_args": {"lr": 0.01}})
    scores = plan.evaluate(params, test_x.astype(np.float32), test_y)
    print(f"MLP held-out metrics: {scores}")
    assert scores["accuracy"] >= 0.9
    train_rows = []
    for view in views:
        rows = np.loadtxt(view.path, delimiter=",", skiprows=1)[:, :-1]
        train_rows.append(rows[held_out_split(len(rows), 0.2, 0, view.dataset_id)[0]])
    # FedAvg of each node's moments (weighted by its training rows) = the pooled moments.
    np.testing.assert_allclose(
        params[f"{BUFFER_PREFIX}0.feature_mean"], np.concatenate(train_rows).mean(axis=0), rtol=1e-5
    )


def test_training_is_deterministic_and_reports_both_validations(
    breast_cancer: tuple[list[DatasetView], np.ndarray, np.ndarray],
) -> None:
    views, _, _ = breast_cancer
    plan = TorchMLPPlan({"n_features": 30, "classes": [0, 1], "dropout": 0.2})
    params = plan.init_params()
    first = plan.train(params, views[0], {"seed": 2}, NullProgress())
    second = plan.train(params, views[0], {"seed": 2}, NullProgress())
    assert all(np.array_equal(first.params[k], second.params[k]) for k in first.params)
    assert {"global_accuracy", "local_accuracy", "local_roc_auc"} <= set(first.metrics)
    assert first.metrics == second.metrics


def test_num_updates_and_log_interval(
    breast_cancer: tuple[list[DatasetView], np.ndarray, np.ndarray],
) -> None:
    views, _, _ = breast_cancer
    plan = TorchMLPPlan({"n_features": 30, "classes": [0, 1]})
    progress = RecordingProgress()
    args = {"num_updates": 20, "batch_size": 4, "log_interval": 5, "test_ratio": 0.0}
    outcome = plan.train(plan.init_params(), views[0], args, progress)
    assert [step for _, _, step in progress.scalars] == [5, 10, 15, 20]
    assert list(outcome.metrics) == ["train_loss"]  # nothing held out: no validation
    assert outcome.metrics["train_loss"] > 0


def test_fedprox_keeps_local_weights_closer_to_the_global_ones(
    breast_cancer: tuple[list[DatasetView], np.ndarray, np.ndarray],
) -> None:
    views, _, _ = breast_cancer
    plan = TorchMLPPlan({"n_features": 30, "classes": [0, 1]})
    start = plan.init_params()

    def drift(mu: float) -> float:
        args = {"epochs": 3, "optimizer_args": {"lr": 0.05}, "fedprox_mu": mu}
        trained = plan.train(start, views[1], args, NullProgress()).params
        return sum(float(np.sum((trained[k] - start[k]) ** 2)) for k in start if "weight" in k)

    assert drift(10.0) < 0.5 * drift(0.0)


def test_regression_mlp_reports_regression_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    view = write_csv(tmp_path / "r.csv", features, features @ np.array([1.0, -1.0, 2.0]))
    plan = TorchMLPPlan({"n_features": 3})
    args = {"epochs": 5, "optimizer_args": {"lr": 0.01}}
    outcome = plan.train(plan.init_params(), view, args, NullProgress())
    assert set(outcome.metrics) == {
        "train_loss",
        "global_mse",
        "global_mae",
        "local_mse",
        "local_mae",
    }
    assert outcome.metrics["local_mse"] < outcome.metrics["global_mse"]


def test_cnn_on_digits_with_batchnorm_buffers(tmp_path: Path) -> None:
    features, target = load_digits(return_X_y=True)
    views, test_x, test_y = split_nodes(tmp_path, features, target, nodes=2)
    plan = TorchCNNPlan({"n_classes": 10})
    start = plan.init_params()
    assert np.all(start[f"{BUFFER_PREFIX}1.running_var"] == 1)
    params = fedavg(plan, views, rounds=2, args={"epochs": 2})
    assert not np.all(params[f"{BUFFER_PREFIX}1.running_var"] == 1)
    scores = plan.evaluate(params, (test_x / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), test_y)
    print(f"CNN held-out metrics: {scores}")
    assert scores["accuracy"] >= 0.85


def test_cnn_reads_image_folders_and_mnist_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for label in range(2):
        for index in range(6):
            folder = tmp_path / "images" / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    plan = TorchCNNPlan({"n_classes": 2})
    images = DatasetView("ds-img", "images", tmp_path / "images")
    assert plan.train(plan.init_params(), images, {}, NullProgress()).sample_count == 10

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    pixels = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 2, 10).astype(np.uint8)
    (mnist / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + pixels.tobytes())
    )
    (mnist / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + labels.tobytes())
    )
    outcome = plan.train(
        plan.init_params(), DatasetView("ds-m", "mnist", mnist), {}, NullProgress()
    )
    assert outcome.sample_count == 8


def test_assigned_cuda_device_is_used_or_refused_clearly(
    breast_cancer: tuple[list[DatasetView], np.ndarray, np.ndarray],
) -> None:
    views, _, _ = breast_cancer
    plan = TorchMLPPlan({"n_features": 30, "classes": [0, 1]})
    plan.assigned_device = "cuda:0"
    if torch.cuda.is_available():
        outcome = plan.train(plan.init_params(), views[0], {}, NullProgress())
        assert all(isinstance(v, np.ndarray) for v in outcome.params.values())
        assert outcome.metrics["local_accuracy"] > 0.5
    else:
        with pytest.raises(PlanError, match="CUDA is not available"):
            plan.train(plan.init_params(), views[0], {}, NullProgress())
    plan.assigned_device = "quantum:3"
    with pytest.raises(PlanError, match="unknown device"):
        plan.train(plan.init_params(), views[0], {}, NullProgress())


def _write_module(tmp_path: Path, name: str, body: str) -> type[TrainingPlan]:
    source = textwrap.dedent(body)
    return load_plan_class(source, name, tmp_path / "plans")


def test_custom_plan_without_training_step_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="does not implement: training_step"):
        _write_module(
            tmp_path,
            "Incomplete",
            """
            from torch import nn
            from fedward.learning.torch_plan import TorchTrainingPlan

            class Incomplete(TorchTrainingPlan):
                def init_model(self):
                    return nn.Linear(2, 1)

                def training_data(self, dataset):
                    return [[0.0, 1.0]], [1]
            """,
        )


def test_a_loss_that_becomes_nan_stops_training_with_advice(tmp_path: Path) -> None:
    cls = _write_module(
        tmp_path,
        "Exploding",
        """
        import numpy as np
        import torch
        from torch import nn
        from fedward.learning.torch_plan import TorchTrainingPlan

        class Exploding(TorchTrainingPlan):
            def init_model(self):
                return nn.Linear(2, 2)

            def training_data(self, dataset):
                return np.ones((8, 2), dtype=np.float32), np.zeros(8, dtype=np.int64)

            def training_step(self, model, inputs, targets):
                return model(inputs).sum() * float("nan")
        """,
    )
    plan = cls({})
    with pytest.raises(PlanError, match=r"became nan at step 1.*lower the learning rate"):
        plan.train(plan.init_params(), DatasetView("ds", "csv", tmp_path), {}, NullProgress())


def test_shipped_torch_plans_travel_as_source(tmp_path: Path) -> None:
    for cls in (TorchMLPPlan, TorchCNNPlan):
        loaded = load_plan_class(plan_source(cls), cls.__name__, tmp_path)
        assert loaded.framework == "torch"
        assert set(loaded({"n_features": 4, "classes": [0, 1], "n_classes": 3}).init_params())
