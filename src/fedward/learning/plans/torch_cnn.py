"""Default plan: a small CNN on images, MNIST or 8x8 digits stored as CSV pixels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from fedward.errors import DatasetError, PlanError
from fedward.learning.datasets.csv_table import load_csv_xy
from fedward.learning.datasets.images import load_images
from fedward.learning.datasets.mnist import load_mnist
from fedward.learning.plan import DatasetView
from fedward.learning.torch_modules import optimizer_arguments
from fedward.learning.torch_plan import TorchTrainingPlan


class TorchCNNPlan(TorchTrainingPlan):
    """Two conv blocks (with BatchNorm, whose running statistics travel as buffers).

    model_args: ``n_classes`` (int), ``in_channels`` (default 1), and by dataset type:
    ``images``: ``image_size`` ``[width, height]`` (needed when sizes vary), ``mode``
    (default ``"L"``); ``mnist``: ``split`` (default all); ``csv``: one pixel per column
    plus the label (``target_column``, default last), ``image_shape`` ``[C, H, W]``
    (default ``[1, 8, 8]``) and ``pixel_max`` (default 16, sklearn's digits).
    Pixels are scaled to [0, 1].
    training_args: see ``TorchTrainingPlan``; ``optimizer_args`` go to Adam (``lr`` 1e-3).
    """

    task = "classification"

    model_arg_names = frozenset(
        {
            "n_classes",
            "in_channels",
            "image_size",
            "mode",
            "split",
            "target_column",
            "image_shape",
            "pixel_max",
        }
    )
    optimizer_arg_names = optimizer_arguments(torch.optim.Adam)

    def init_model(self) -> nn.Module:
        n_classes = self.model_args.get("n_classes")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise PlanError("model_args n_classes must be an integer >= 2")
        channels = int(self.model_args.get("in_channels", 1))
        return nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, n_classes),
        )

    def training_data(self, dataset: DatasetView) -> tuple[np.ndarray, np.ndarray]:
        if dataset.data_type == "images":
            size = self.model_args.get("image_size")
            pixels, labels, _ = load_images(
                dataset.path,
                size=tuple(size) if size else None,
                mode=self.model_args.get("mode", "L"),
            )
            images = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        elif dataset.data_type == "mnist":
            pixels, labels = load_mnist(dataset.path, split=self.model_args.get("split"))
            images = pixels[:, np.newaxis].astype(np.float32) / 255.0
        elif dataset.data_type == "csv":
            flat, labels, _ = load_csv_xy(dataset.path, self.model_args.get("target_column"))
            shape = list(self.model_args.get("image_shape", [1, 8, 8]))
            if flat.shape[1] != int(np.prod(shape)):
                raise DatasetError(
                    f"dataset {dataset.dataset_id} has {flat.shape[1]} pixel columns, "
                    f"image_shape {shape} needs {int(np.prod(shape))}"
                )
            pixel_max = float(self.model_args.get("pixel_max", 16.0))
            images = flat.reshape(-1, *shape).astype(np.float32) / pixel_max
        else:
            raise DatasetError(f"TorchCNNPlan cannot read {dataset.data_type} datasets")
        labels = np.asarray(labels).astype(np.int64)
        if labels.min() < 0 or labels.max() >= int(self.model_args["n_classes"]):
            raise DatasetError(f"dataset {dataset.dataset_id} has labels outside [0, n_classes)")
        return images, labels

    def training_step(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return nn.functional.cross_entropy(model(inputs), targets)

    def init_optimizer(
        self, model: nn.Module, optimizer_args: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), **{"lr": 1e-3, **optimizer_args})
