"""Default plan: a multi-layer perceptron on a CSV table (classification or regression)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from fedward.errors import DatasetError, PlanError
from fedward.learning.datasets.csv_table import load_csv_xy
from fedward.learning.plan import DatasetView
from fedward.learning.torch_modules import Standardize, feature_moments, optimizer_arguments
from fedward.learning.torch_plan import TorchTrainingPlan


class TorchMLPPlan(TorchTrainingPlan):
    """An MLP whose first layer standardises with pooled feature moments.

    model_args: ``n_features`` (int), ``classes`` (list; omit it for regression),
    ``hidden`` (layer widths, default ``[64]``), ``dropout`` (default 0),
    ``target_column`` (default the last column).
    training_args: see ``TorchTrainingPlan``; ``optimizer_args`` go to Adam (``lr`` 1e-3).
    """

    model_arg_names = frozenset({"n_features", "classes", "hidden", "dropout", "target_column"})
    optimizer_arg_names = optimizer_arguments(torch.optim.Adam)

    @property
    def task(self) -> str:  # type: ignore[override]
        return "classification" if self.model_args.get("classes") else "regression"

    def _classes(self) -> np.ndarray:
        classes = np.unique(np.asarray(self.model_args["classes"]))
        if len(classes) < 2:
            raise PlanError("model_args classes must list at least two distinct labels")
        return classes

    def init_model(self) -> nn.Module:
        n_features = self.model_args.get("n_features")
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise PlanError("model_args n_features must be a positive integer")
        widths = [n_features, *self.model_args.get("hidden", [64])]
        outputs = len(self._classes()) if self.task == "classification" else 1
        layers: list[nn.Module] = [Standardize(n_features)]
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
            if self.model_args.get("dropout"):
                layers.append(nn.Dropout(float(self.model_args["dropout"])))
        layers.append(nn.Linear(widths[-1], outputs))
        return nn.Sequential(*layers)

    def training_data(self, dataset: DatasetView) -> tuple[np.ndarray, np.ndarray]:
        features, target, _ = load_csv_xy(dataset.path, self.model_args.get("target_column"))
        if np.isnan(features).any():
            raise DatasetError(f"dataset {dataset.dataset_id} has missing feature values")
        if self.task == "regression":
            return features.astype(np.float32), target.astype(np.float32)
        classes = self._classes()
        if classes.dtype.kind in "iu" and target.dtype.kind == "f":
            target = target.astype(np.int64)
        elif classes.dtype.kind == "U":
            target = target.astype(str)
        unknown = int(np.sum(~np.isin(target, classes)))
        if unknown:
            raise DatasetError(
                f"dataset {dataset.dataset_id}: {unknown} label(s) are not in model_args classes"
            )
        return features.astype(np.float32), np.searchsorted(classes, target).astype(np.int64)

    def training_step(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        outputs = model(inputs)
        if self.task == "regression":
            return nn.functional.mse_loss(outputs.reshape(targets.shape), targets)
        return nn.functional.cross_entropy(outputs, targets)

    def init_optimizer(
        self, model: nn.Module, optimizer_args: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), **{"lr": 1e-3, **optimizer_args})

    @staticmethod
    def _scaler(model: nn.Module) -> Standardize:
        scaler = model.get_submodule("0")
        if not isinstance(scaler, Standardize):
            raise PlanError("the first layer of the MLP must be Standardize")
        return scaler

    def on_round_start(self, model: nn.Module, train_data: Any) -> None:
        scaler = self._scaler(model)
        if not scaler.has_moments():  # round 0: no pooled moments yet
            scaler.set_moments(*feature_moments(train_data))

    def on_round_end(self, model: nn.Module, train_data: Any) -> None:
        # What this node contributes: FedAvg of local moments = pooled moments.
        self._scaler(model).set_moments(*feature_moments(train_data))
