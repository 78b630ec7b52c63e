"""Aggregators: how node updates become the next global parameters.

An aggregator sees one round at a time: ``begin_round`` with the global parameters,
``add`` once per node update (possibly a lazy mapping read from disk, with its layout),
then ``finish``. Implementations SHOULD fold updates in as they arrive (O(model) memory);
those that cannot (median, Krum) say so. ``state``/``load_state`` carry whatever must
survive a checkpoint, as parameters plus JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout, WeightedMean
from fedward.core.params import Params


class Aggregator(ABC):
    name: str = "aggregator"

    def begin_round(self, global_params: Params, round_index: int) -> None:
        """Called before any update of a round arrives."""

    def extras_for_node(self, node_id: str) -> dict[str, Params]:
        """Extra tensors to send with a node's train request (e.g. SCAFFOLD's control variate)."""
        return {}

    def training_args_for_node(self, node_id: str) -> dict[str, Any]:
        """Training arguments this aggregator needs the node's plan to use (e.g. FedProx's mu)."""
        return {}

    @abstractmethod
    def add(
        self,
        node_id: str,
        update: Mapping[str, np.ndarray],
        weight: float,
        layout: Layout | None = None,
        extras: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        """Fold in one node's update; ``weight`` is its sample count."""

    @abstractmethod
    def finish(self) -> Params:
        """The next global parameters."""

    def state(self) -> tuple[dict[str, Params], dict[str, Any]]:
        """(tensors, JSON) to checkpoint; empty for stateless aggregators."""
        return {}, {}

    def load_state(self, tensors: dict[str, Params], data: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""


class FedAvg(Aggregator):
    """Average of the updates weighted by sample count (McMahan et al., 2017), streaming."""

    name = "fedavg"

    def __init__(self) -> None:
        self._mean = WeightedMean()

    def begin_round(self, global_params: Params, round_index: int) -> None:
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
