"""The ``Aggregator`` interface and the vocabulary its implementations share.

An aggregator sees one round at a time. The experiment calls, in this order:

1. ``begin_round(global_params, round_index, population=N)``, ``N`` being the number of
   nodes that could take part in the experiment (SCAFFOLD needs it);
2. ``training_args_for_node`` / ``extras_for_node`` for each selected node, to build its
   train request;
3. ``add`` once per node update that passed the layout check against the global model,
   **in ascending node id order** (the experiment holds early arrivals on disk), so that
   floating-point sums, and hence the parameters, replay bit for bit;
4. ``finish`` for the next global parameters, or nothing when the round failed.

``add`` MUST validate everything it needs (extras, shapes) before changing any running
state: a refused update raises ``ValidationError`` and leaves the aggregator as it was.
State that outlives a round (server optimiser moments, control variates) changes only in
``finish``, so a failed round can be retried. ``state``/``load_state`` carry that state
through checkpoints; ``config`` gives the constructor arguments as JSON.

Parameters named ``buffer:<name>`` (data statistics, see ``fedward.learning.plan``) and
non-floating parameters are never stepped by a server rule: they take the plain
sample-weighted mean (``is_stepped``), except under the robust rules, which weigh no
node by its claimed sample count and combine them with their own rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout, layout_of
from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.learning.plan import is_buffer

#: What ``state`` returns: named groups of tensors (each group one safetensors file in a
#: checkpoint; values may be lazy mappings) and JSON.
TensorGroups = dict[str, Mapping[str, np.ndarray]]


class Aggregator(ABC):
    name: str = "aggregator"
    #: True when updates are folded in as they come (O(model) memory); False for rules that
    #: need every update at once (median, trimmed mean, Krum), which spool them to disk.
    streaming: bool = True
    #: True when the rule needs only the weighted mean of the round's updates, so that it
    #: works under secure aggregation, which reveals nothing but that mean (FedAvg, FedOpt).
    #: Rules that look at each update (median, Krum, SCAFFOLD's control deltas) cannot.
    works_on_mean: bool = False

    def begin_round(
        self, global_params: Params, round_index: int, population: int | None = None
    ) -> None:
        """Called before any update of a round arrives."""

    def extras_for_node(self, node_id: str) -> dict[str, Params]:
        """Extra tensors to send with a node's train request (e.g. SCAFFOLD's control variate)."""
        return {}

    def expected_extras(self) -> dict[str, Layout]:
        """The extra tensors ``add`` wants from each node, by name, with the layout each
        must have (e.g. SCAFFOLD's control delta). The round downloads these only, checked
        like the update itself; other extras a node names are ignored."""
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
        """Fold in one node's update (its full parameters); ``weight`` is its sample count."""

    @abstractmethod
    def finish(self) -> Params:
        """The next global parameters."""

    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments, JSON-serialisable (to rebuild it from a checkpoint)."""
        return {}

    def state(self) -> tuple[TensorGroups, dict[str, Any]]:
        """(tensor groups, JSON) to checkpoint; empty for stateless aggregators."""
        return {}, {}

    def load_state(
        self, tensors: Mapping[str, Mapping[str, np.ndarray]], data: dict[str, Any]
    ) -> None:
        """Restore what ``state`` returned."""

    def close(self) -> None:
        """Release disk space held between rounds (spools); the aggregator is done."""


def is_stepped(name: str, dtype: np.dtype) -> bool:
    """True for a trained weight a server rule may step; False for buffers and integers."""
    return not is_buffer(name) and np.issubdtype(dtype, np.floating)


def stepped_layout(layout: Layout) -> Layout:
    return {n: (shape, np.dtype(dt)) for n, (shape, dt) in layout.items() if is_stepped(n, dt)}


def check_finite(name: str, value: np.ndarray, what: str = "update") -> None:
    if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
        raise ValidationError(f"{what} {name!r} holds NaN or infinite values")


def zeros_like_layout(layout: Layout, dtype: Any = None) -> Params:
    return {n: np.zeros(shape, dtype=dtype or dt) for n, (shape, dt) in layout.items()}


def layout_or_infer(update: Mapping[str, np.ndarray], layout: Layout | None) -> Layout:
    return layout if layout is not None else layout_of(update)
