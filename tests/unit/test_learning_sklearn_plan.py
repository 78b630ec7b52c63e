from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from fedward.core.aggregation import WeightedMean
from fedward.core.params import Params
from fedward.errors import DatasetError, PlanError
from fedward.learning.feature_scaling import FEATURE_MEAN, FEATURE_SQ_MEAN
from fedward.learning.plan import DatasetView, NullProgress, TrainingPlan
from fedward.learning.plan_source import load_plan_class, plan_source
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.learning.plans.sklearn_perceptron import PerceptronPlan
from fedward.learning.plans.sklearn_regressor import SGDRegressorPlan


class RecordingProgress:
    def __init__(self) -> None:
        self.scalars: list[tuple[str, float, int]] = []
        self.logs: list[tuple[str, str]] = []

    def scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.append((name, value, step))

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))


def write_csv(path: Path, features: np.ndarray, target: np.ndarray) -> DatasetView:
    header = [f"f{j}" for j in range(features.shape[1])] + ["target"]
    lines = [",".join(header)]
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(label)])
        for row, label in zip(features, target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return DatasetView(dataset_id=f"ds-{path.stem}", data_type="csv", path=path)


def fedavg_rounds(
    plan: TrainingPlan, views: list[DatasetView], rounds: int, args: dict | None = None
) -> Params:
    params = plan.init_params(seed=0)
    for _ in range(rounds):
        mean = WeightedMean()
        for view in views:
            outcome = plan.train(params, view, args or {"seed": 0}, NullProgress())
            mean.add(outcome.params, outcome.sample_count)
        params = mean.result()
    return params


@pytest.fixture(scope="module")
def breast_cancer_nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]]:
    features, target = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(target))
    held_out, rest = order[:114], order[114:]
    folder = tmp_path_factory.mktemp("breast_cancer")
    parts = np.array_split(rest, 3)
    views = [
        write_csv(folder / f"node{i}.csv", features[part], target[part])
        for i, part in enumerate(parts)
    ]
    return views, features[held_out], target[held_out], [features[p] for p in parts]


def test_fedavg_of_three_nodes_reaches_093_on_breast_cancer_in_5_rounds(
    breast_cancer_nodes: tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    views, test_x, test_y, _ = breast_cancer_nodes
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    params = fedavg_rounds(plan, views, rounds=5)
    scores = plan.evaluate(params, test_x, test_y)
    print(f"held-out metrics after 5 rounds: {scores}")
    assert scores["accuracy"] >= 0.93
    assert scores["roc_auc"] >= 0.95


def test_pooled_moments_are_the_exact_statistics_of_all_training_rows(
    breast_cancer_nodes: tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    views, _, _, node_features = breast_cancer_nodes
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    args = {"seed": 0, "test_ratio": 0.0}
    params = fedavg_rounds(plan, views, rounds=1, args=args)
    every_row = np.concatenate(node_features)
    np.testing.assert_allclose(params[FEATURE_MEAN], every_row.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(params[FEATURE_SQ_MEAN], (every_row**2).mean(axis=0), rtol=1e-12)


def test_training_reports_global_and_local_metrics_and_sample_count(
    breast_cancer_nodes: tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    views, _, _, node_features = breast_cancer_nodes
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    outcome = plan.train(plan.init_params(), views[0], {"test_ratio": 0.25}, NullProgress())
    n_rows = len(node_features[0])
    assert outcome.sample_count == n_rows - round(n_rows * 0.25)
    assert set(outcome.metrics) == {"train_loss"} | {
        f"{when}_{name}" for when in ("global", "local") for name in ("accuracy", "f1", "roc_auc")
    }
    assert outcome.metrics["local_accuracy"] > 0.85
    assert 0 < outcome.metrics["train_loss"] < 1
    assert outcome.params["coef"].shape == (1, 30)
    assert outcome.params["coef"].dtype == np.float64


def test_training_is_deterministic_for_the_same_inputs(
    breast_cancer_nodes: tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    views, _, _, _ = breast_cancer_nodes
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    first = plan.train(plan.init_params(), views[1], {"seed": 3}, NullProgress())
    second = plan.train(plan.init_params(), views[1], {"seed": 3}, NullProgress())
    for name in first.params:
        assert np.array_equal(first.params[name], second.params[name])
    assert first.metrics == second.metrics


def test_train_loss_is_streamed_every_log_interval(
    breast_cancer_nodes: tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    views, _, _, _ = breast_cancer_nodes
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    progress = RecordingProgress()
    args = {"num_updates": 12, "batch_size": 8, "log_interval": 3}
    plan.train(plan.init_params(), views[0], args, progress)
    assert [(name, step) for name, _, step in progress.scalars] == [
        ("train_loss", step) for step in (3, 6, 9, 12)
    ]
    assert all(np.isfinite(value) and value >= 0 for _, value, _ in progress.scalars)


def test_epochs_and_batch_maxnum_bound_the_number_of_updates(
    breast_cancer_nodes: tuple[list[DatasetView], np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    views, _, _, _ = breast_cancer_nodes
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    progress = RecordingProgress()
    args = {"epochs": 3, "batch_maxnum": 2, "log_interval": 1}
    plan.train(plan.init_params(), views[0], args, progress)
    assert len(progress.scalars) == 6


def test_regressor_learns_a_linear_function(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(5.0, 3.0, (600, 4))
    target = features @ np.array([1.5, -2.0, 0.5, 3.0]) + 4.0 + rng.normal(0, 0.1, 600)
    views = [
        write_csv(tmp_path / f"r{i}.csv", features[part], target[part])
        for i, part in enumerate(np.array_split(np.arange(500), 2))
    ]
    plan = SGDRegressorPlan({"n_features": 4})
    params = fedavg_rounds(plan, views, rounds=5)
    scores = plan.evaluate(params, features[500:], target[500:], ["mse", "explained_variance"])
    assert scores["explained_variance"] > 0.99
    assert params["coef"].shape == (4,)


def test_multiclass_perceptron_trains_one_row_per_class(tmp_path: Path) -> None:
    features, target = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[target]
    view = write_csv(tmp_path / "iris.csv", features, names)
    plan = PerceptronPlan({"n_features": 4, "classes": ["setosa", "versicolor", "virginica"]})
    outcome = plan.train(plan.init_params(), view, {"epochs": 5, "seed": 1}, NullProgress())
    assert outcome.params["coef"].shape == (3, 4)
    assert outcome.metrics["local_accuracy"] > 0.7
    assert "local_roc_auc" in outcome.metrics
    assert plan.predict(outcome.params, features[:2]).dtype.kind == "U"


def test_fixed_and_no_standardisation_keep_only_coef_and_intercept(tmp_path: Path) -> None:
    features, target = load_breast_cancer(return_X_y=True)
    view = write_csv(tmp_path / "bc.csv", features[:200], target[:200])
    fixed = SGDClassifierPlan(
        {
            "n_features": 30,
            "classes": [0, 1],
            "standardize": "fixed",
            "feature_scale": {"mean": features.mean(0).tolist(), "std": features.std(0).tolist()},
        }
    )
    outcome = fixed.train(fixed.init_params(), view, {}, NullProgress())
    assert set(outcome.params) == {"coef", "intercept"}
    assert outcome.metrics["local_accuracy"] > 0.85
    raw = SGDClassifierPlan({"n_features": 30, "classes": [0, 1], "standardize": "none"})
    assert set(raw.init_params()) == {"coef", "intercept"}


def test_feature_count_mismatch_is_a_dataset_error(tmp_path: Path) -> None:
    view = write_csv(tmp_path / "small.csv", np.ones((10, 3)), np.arange(10) % 2)
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    with pytest.raises(DatasetError, match=r"3 feature columns.*n_features=30"):
        plan.train(plan.init_params(), view, {}, NullProgress())


def test_unknown_labels_are_counted_not_shown(tmp_path: Path) -> None:
    view = write_csv(tmp_path / "ids.csv", np.ones((4, 2)), np.array([101, 102, 0, 1]))
    plan = SGDClassifierPlan({"n_features": 2, "classes": [0, 1]})
    with pytest.raises(DatasetError, match="2 label") as caught:
        plan.train(plan.init_params(), view, {}, NullProgress())
    assert "101" not in str(caught.value)


def test_missing_dataset_file_error_does_not_reveal_the_path(tmp_path: Path) -> None:
    hidden = tmp_path / "hospital_secret_folder" / "data.csv"
    view = DatasetView("ds-x", "csv", hidden)
    plan = SGDClassifierPlan({"n_features": 2, "classes": [0, 1]})
    with pytest.raises(DatasetError) as caught:
        plan.train(plan.init_params(), view, {}, NullProgress())
    assert "hospital_secret_folder" not in str(caught.value)
    assert "<dataset>" in str(caught.value)


@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        ({"classes": [0, 1]}, "n_features must be a positive integer"),
        ({"n_features": 3}, "classes must list at least two"),
        ({"n_features": 3, "classes": [0, 0]}, "classes must list at least two"),
        ({"n_features": 3, "classes": [0, 1], "estimator": {"average": True}}, "average"),
        ({"n_features": 3, "classes": [0, 1], "estimator": {"nonsense": 1}}, "invalid estimator"),
        ({"n_features": 3, "classes": [0, 1], "standardize": "zscore"}, "standardize='zscore'"),
        ({"n_features": 3, "classes": [0, 1], "standardize": "fixed"}, "feature_scale"),
    ],
)
def test_bad_model_args_are_plan_errors(model_args: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        SGDClassifierPlan(model_args).init_params()


def test_parameters_of_another_model_are_refused(tmp_path: Path) -> None:
    view = write_csv(tmp_path / "t.csv", np.ones((10, 2)), np.arange(10) % 2)
    plan = SGDClassifierPlan({"n_features": 2, "classes": [0, 1]})
    wrong = {**plan.init_params(), "coef": np.zeros((1, 5))}
    with pytest.raises(PlanError, match="'coef' does not fit"):
        plan.train(wrong, view, {}, NullProgress())


def test_fedprox_is_refused_clearly(tmp_path: Path) -> None:
    view = write_csv(tmp_path / "t.csv", np.ones((10, 2)), np.arange(10) % 2)
    plan = SGDClassifierPlan({"n_features": 2, "classes": [0, 1]})
    with pytest.raises(PlanError, match="FedProx"):
        plan.train(plan.init_params(), view, {"fedprox_mu": 0.1}, NullProgress())


@pytest.mark.parametrize(
    ("cls", "model_args"),
    [
        (SGDClassifierPlan, {"n_features": 2, "classes": [0, 1]}),
        (SGDRegressorPlan, {"n_features": 2}),
        (PerceptronPlan, {"n_features": 2, "classes": [0, 1]}),
    ],
)
def test_shipped_plans_travel_as_source_and_train_after_loading(
    tmp_path: Path, cls: type[TrainingPlan], model_args: dict
) -> None:
    source = plan_source(cls)
    assert [type(node).__name__ for node in ast.parse(source).body][-1] == "ClassDef"
    assert sum(isinstance(node, ast.ClassDef) for node in ast.parse(source).body) == 1
    loaded = load_plan_class(source, cls.__name__, tmp_path / "work")
    plan = loaded(model_args)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 2))
    view = write_csv(tmp_path / "t.csv", features, (features[:, 0] > 0).astype(int))
    outcome = plan.train(plan.init_params(), view, {}, NullProgress())
    assert outcome.sample_count == 32
