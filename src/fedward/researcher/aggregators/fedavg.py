"""FedAvg and FedProx: the sample-weighted mean of the node parameters, streaming."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout, WeightedMean
from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.researcher.aggregators.base import Aggregator


class FedAvg(Aggregator):
    """Average of the updates weighted by sample count (McMahan et al., 2017), streaming."""

    name = "fedavg"
    works_on_mean = True

    def __init__(self) -> None:
        self._mean = WeightedMean()

    def begin_round(
        self, global_params: Params, round_index: int, population: int | None = None
    ) -> None:
        self._mean = WeightedMean()

    def add(
        self,
        node_id: str,
        update: Mapping[str, np.ndarray],
        weight: float,
        layout: Layout | None = None,
        extras: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        self._mean.add(update, weight, layout)

    def finish(self) -> Params:
        return self._mean.result()


class FedProx(FedAvg):
    """FedAvg on the server; each node adds ``mu/2 * ||w - w_global||^2`` to its local loss
    (Li et al., 2020), which keeps local models near the global one on non-IID data.

    The node's plan must honour the ``fedprox_mu`` training argument (the shipped torch
    plans do; the sklearn SGD plans refuse it rather than ignore it).
    """

    name = "fedprox"

    def __init__(self, mu: float = 0.01) -> None:
        super().__init__()
        if not mu > 0:
            raise ValidationError(f"FedProx mu must be positive, got {mu}")
        self.mu = float(mu)

    def training_args_for_node(self, node_id: str) -> dict[str, Any]:
        return {"fedprox_mu": self.mu}

    def config(self) -> dict[str, Any]:
        return {"mu": self.mu}
