"""FedAdam, FedYogi, FedAdagrad: an adaptive optimiser on the server (Reddi et al., 2021).

The weighted mean of the node parameters is taken as usual (streaming); its difference
from the global parameters is the pseudo-gradient ``d`` the server optimiser follows:

    m <- beta1 * m + (1 - beta1) * d
    v <- v + d^2                                     (FedAdagrad)
    v <- beta2 * v + (1 - beta2) * d^2               (FedAdam)
    v <- v - (1 - beta2) * d^2 * sign(v - d^2)       (FedYogi)
    x <- x + lr * m / (sqrt(v) + tau)

as in the paper's Algorithm 2: ``m`` starts at zero, ``v`` at ``tau^2``, no bias
correction. The moments are float64 and are part of the checkpoint. Buffers and integer
parameters take the plain weighted mean.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout, WeightedMean, check_layout, layout_of
from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.researcher.aggregators.base import (
    Aggregator,
    TensorGroups,
    stepped_layout,
)


class ServerOptimizer(Aggregator):
    """Base of the FedOpt family; subclasses define the second-moment update."""

    name = "fedopt"
    works_on_mean = True

    def __init__(
        self, lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        if not lr > 0 or not tau > 0:
            raise ValidationError(f"{self.name}: lr and tau must be positive")
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValidationError(f"{self.name}: beta1 and beta2 must be in [0, 1)")
        self.lr, self.beta1, self.beta2, self.tau = (
            float(lr),
            float(beta1),
            float(beta2),
            float(tau),
        )
        self._m: Params | None = None
        self._v: Params | None = None
        self._global: Params = {}
        self._layout: Layout = {}
        self._mean = WeightedMean()

    def begin_round(
        self, global_params: Params, round_index: int, population: int | None = None
    ) -> None:
        self._global = global_params
        self._layout = stepped_layout(layout_of(global_params))
        if self._m is None or self._v is None:
            self._m = {n: np.zeros(shape) for n, (shape, _) in self._layout.items()}
            self._v = {n: np.full(shape, self.tau**2) for n, (shape, _) in self._layout.items()}
        else:
            moments = {n: (shape, np.dtype(np.float64)) for n, (shape, _) in self._layout.items()}
            check_layout(moments, layout_of(self._m), "server moment")
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

    @abstractmethod
    def second_moment(self, v: np.ndarray, d_squared: np.ndarray) -> np.ndarray:
        """The new ``v`` from the old one and the squared pseudo-gradient."""

    def finish(self) -> Params:
        mean = self._mean.result()
        assert self._m is not None and self._v is not None
        out: Params = {}
        new_m: Params = {}
        new_v: Params = {}
        for name, value in mean.items():
            if name not in self._layout:
                out[name] = value
                continue
            x = self._global[name].astype(np.float64)
            d = value.astype(np.float64) - x
            new_m[name] = self.beta1 * self._m[name] + (1 - self.beta1) * d
            new_v[name] = self.second_moment(self._v[name], d * d)
            step = self.lr * new_m[name] / (np.sqrt(new_v[name]) + self.tau)
            out[name] = (x + step).astype(value.dtype)
        # Moments change only once the round succeeded, so a failed round can be retried.
        self._m, self._v = new_m, new_v
        return out

    def config(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "tau": self.tau}

    def state(self) -> tuple[TensorGroups, dict[str, Any]]:
        if self._m is None or self._v is None:
            return {}, {}
        return {"m": self._m, "v": self._v}, {}

    def load_state(
        self, tensors: Mapping[str, Mapping[str, np.ndarray]], data: dict[str, Any]
    ) -> None:
        if "m" in tensors and "v" in tensors:
            self._m = {n: np.asarray(tensors["m"][n], np.float64) for n in tensors["m"]}
            self._v = {n: np.asarray(tensors["v"][n], np.float64) for n in tensors["v"]}


class FedAdagrad(ServerOptimizer):
    name = "fedadagrad"

    def __init__(
        self, lr: float = 0.01, beta1: float = 0.0, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        super().__init__(lr, beta1, beta2, tau)

    def second_moment(self, v: np.ndarray, d_squared: np.ndarray) -> np.ndarray:
        return v + d_squared


class FedAdam(ServerOptimizer):
    name = "fedadam"

    def second_moment(self, v: np.ndarray, d_squared: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * d_squared


class FedYogi(ServerOptimizer):
    name = "fedyogi"

    def second_moment(self, v: np.ndarray, d_squared: np.ndarray) -> np.ndarray:
        return v - (1 - self.beta2) * d_squared * np.sign(v - d_squared)
