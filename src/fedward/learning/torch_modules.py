"""Layers and helpers for torch plans (imports torch: only torch plans import this module).

``Standardize`` is the torch form of ``feature_scaling``'s pooled mode: the first layer
of a tabular model holds the feature moments as persistent buffers, so they travel as
``buffer:<layer>.feature_mean`` / ``.feature_sq_mean`` and FedAvg turns the nodes' local
moments into the exact pooled ones. A plan sets local moments at ``on_round_start`` while
the buffers are still zero (round 0) and at ``on_round_end`` (what it contributes).

``optimizer_arguments`` lists what an optimizer takes, for a plan's
``optimizer_arg_names`` (``TrainingPlan.check_training_args``).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

_MIN_STD = 1e-6


def optimizer_arguments(optimizer_class: type[torch.optim.Optimizer]) -> frozenset[str]:
    """The keyword arguments an optimizer class takes (its parameters are passed apart)."""
    return frozenset(inspect.signature(optimizer_class).parameters) - {"params"}


class Standardize(nn.Module):
    feature_mean: torch.Tensor
    feature_sq_mean: torch.Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_sq_mean", torch.zeros(n_features))

    def has_moments(self) -> bool:
        return bool(torch.any(self.feature_sq_mean != 0))

    def set_moments(self, mean: torch.Tensor, sq_mean: torch.Tensor) -> None:
        # copy_ moves the values to the buffers' device and dtype.
        self.feature_mean.copy_(mean)
        self.feature_sq_mean.copy_(sq_mean)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        variance = torch.clamp(self.feature_sq_mean - self.feature_mean**2, min=0.0)
        std = torch.sqrt(variance)
        std = torch.where(std > _MIN_STD, std, torch.ones_like(std))
        return (inputs - self.feature_mean) / std


def feature_moments(data: Any, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, mean of squares) per feature of the inputs of a dataset of (input, target)."""
    total: torch.Tensor | None = None
    total_sq: torch.Tensor | None = None
    count = 0
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    for inputs, _ in loader:
        batch = inputs.reshape(len(inputs), -1).to(torch.float64)
        total = batch.sum(0) if total is None else total + batch.sum(0)
        total_sq = (batch**2).sum(0) if total_sq is None else total_sq + (batch**2).sum(0)
        count += len(batch)
    if total is None or total_sq is None or count == 0:
        raise ValueError("no sample to compute feature moments from")
    return (total / count).to(torch.float32), (total_sq / count).to(torch.float32)
