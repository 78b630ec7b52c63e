"""SCAFFOLD (Karimireddy et al., 2020): control variates that correct client drift.

The server keeps a control variate ``c`` and, on behalf of each node ``i``, the node's
own ``c_i`` (so nodes stay stateless and a checkpoint holds everything). Each train
request carries two extras, both named like the trained parameters (buffers and integer
parameters excluded):

- ``scaffold_server_control``: ``c``
- ``scaffold_node_control``: ``c_i`` (zeros the first time)

The node's plan MUST then (option II of the paper), starting from the global ``x`` with
plain SGD at local learning rate ``lr`` for ``K`` steps:

- step with the corrected gradient ``y <- y - lr * (grad(y) - c_i + c)``;
- return the extra ``scaffold_delta_control`` = ``(x - y_K) / (K * lr) - c``
  (that is ``c_i_new - c_i`` with ``c_i_new = c_i - c + (x - y_K) / (K * lr)``).

The server then sets ``x <- x + server_lr * (weighted mean of y_i - x)``,
``c_i <- c_i + delta_i`` for each node that answered, and
``c <- c + (1/N) * sum(delta_i)`` with ``N`` the number of nodes in the experiment, not
the number that answered: with partial participation ``c`` stays the mean of all
``c_i`` (``c + |S|/N * mean(delta)``), which is what makes the correction unbiased.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout, WeightedMean, check_layout, layout_of
from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.learning.plan import (
    SCAFFOLD_DELTA_CONTROL,
    SCAFFOLD_NODE_CONTROL,
    SCAFFOLD_SERVER_CONTROL,
)
from fedward.researcher.aggregators.base import (
    Aggregator,
    TensorGroups,
    check_finite,
    stepped_layout,
    zeros_like_layout,
)
from fedward.researcher.aggregators.shelf import ParamsShelf

_NODE_GROUP = "node_control-"


class Scaffold(Aggregator):
    name = "scaffold"

    def __init__(self, server_lr: float = 1.0, control_dir: Path | str | None = None) -> None:
        if not server_lr > 0:
            raise ValidationError(f"SCAFFOLD server_lr must be positive, got {server_lr}")
        self.server_lr = float(server_lr)
        directory = Path(control_dir) if control_dir else None
        self._controls = ParamsShelf(directory, prefix="fedward-scaffold-")
        self._staged = ParamsShelf(None, prefix="fedward-scaffold-staged-")
        self._control: Params | None = None
        self._global: Params = {}
        self._layout: Layout = {}
        self._population: int | None = None
        self._mean = WeightedMean()
        self._delta_sum: dict[str, np.ndarray] = {}
        self._contributors: list[str] = []

    def begin_round(
        self, global_params: Params, round_index: int, population: int | None = None
    ) -> None:
        self._global = global_params
        self._layout = stepped_layout(layout_of(global_params))
        if self._control is None:
            self._control = zeros_like_layout(self._layout)
        else:
            check_layout(self._layout, layout_of(self._control), "server control")
        self._population = population
        self._mean = WeightedMean()
        self._delta_sum = {n: np.zeros(shape, np.float64) for n, (shape, _) in self._layout.items()}
        self._contributors = []
        self._staged.clear()

    @property
    def control(self) -> Params:
        """The server control variate ``c`` (zeros before the first round)."""
        return dict(self._control or {})

    def node_control(self, node_id: str) -> Params:
        """The server's record of ``c_i`` for one node (zeros until it first answered)."""
        return self._controls.get(node_id) or zeros_like_layout(self._layout)

    def extras_for_node(self, node_id: str) -> dict[str, Params]:
        return {
            SCAFFOLD_SERVER_CONTROL: self.control,
            SCAFFOLD_NODE_CONTROL: self.node_control(node_id),
        }

    def expected_extras(self) -> dict[str, Layout]:
        return {SCAFFOLD_DELTA_CONTROL: dict(self._layout)}

    def add(
        self,
        node_id: str,
        update: Mapping[str, np.ndarray],
        weight: float,
        layout: Layout | None = None,
        extras: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        delta = (extras or {}).get(SCAFFOLD_DELTA_CONTROL)
        if delta is None:
            raise ValidationError(
                f"SCAFFOLD needs the node's control update, but the plan returned no "
                f"{SCAFFOLD_DELTA_CONTROL!r} extra",
                hint="use a training plan that implements SCAFFOLD's client step",
            )
        check_layout(self._layout, layout_of(delta), "control delta")
        for name in self._layout:
            check_finite(name, np.asarray(delta[name]), "control delta")
        self._mean.add(update, weight, layout)
        old = self.node_control(node_id)
        new_control: Params = {}
        for name, (_, dtype) in self._layout.items():
            step = np.asarray(delta[name], dtype=np.float64)
            self._delta_sum[name] += step
            new_control[name] = (old[name].astype(np.float64) + step).astype(dtype)
        self._staged.put(node_id, new_control)
        self._contributors.append(node_id)

    def finish(self) -> Params:
        mean = self._mean.result()
        out: Params = {}
        for name, value in mean.items():
            if name in self._layout and self.server_lr != 1.0:
                x = self._global[name].astype(np.float64)
                stepped = x + self.server_lr * (value.astype(np.float64) - x)
                out[name] = stepped.astype(value.dtype)
            else:
                out[name] = value
        # N counts every node of the experiment; never fewer than those that answered.
        known = set(self._controls.entries()) | set(self._contributors)
        population = max(self._population or len(known), len(self._contributors))
        assert self._control is not None
        self._control = {
            name: (
                self._control[name].astype(np.float64) + self._delta_sum[name] / population
            ).astype(dtype)
            for name, (_, dtype) in self._layout.items()
        }
        for node_id in self._contributors:
            self._staged.move_to(node_id, self._controls)
        self._contributors = []
        return out

    def config(self) -> dict[str, Any]:
        return {"server_lr": self.server_lr}

    def state(self) -> tuple[TensorGroups, dict[str, Any]]:
        groups: TensorGroups = {}
        if self._control is not None:
            groups["server_control"] = self._control
        for node_id in self._controls.entries():
            control = self._controls.get(node_id)
            if control is not None:
                groups[_NODE_GROUP + node_id] = control
        return groups, {}

    def load_state(
        self, tensors: Mapping[str, Mapping[str, np.ndarray]], data: dict[str, Any]
    ) -> None:
        self._controls.clear()
        self._control = None
        for group, values in tensors.items():
            params = {name: np.asarray(values[name]) for name in values}
            if group == "server_control":
                self._control = params
            elif group.startswith(_NODE_GROUP):
                self._controls.put(group.removeprefix(_NODE_GROUP), params)

    def close(self) -> None:
        self._controls.close()
        self._staged.close()
