"""``WanPlan``: the WAN benchmark's model, N float32 parameters, like ``NoOpPlan``.

Its "training" adds small Gaussian noise (sd 1e-3, a fresh draw on every node and round)
instead of ``NoOpPlan``'s constant step: every node's update differs, as real ones do,
and a codec meets values of many magnitudes (a constant step is exact in int8). The layout
is ``NoOpPlan``'s: dense 1024x1024 weights and 1024 biases, plus a remainder tensor.
Self-contained: only this file's imports travel with the class to the nodes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.core.params import Params
from fedward.learning.plan import DatasetView, Progress, TrainingPlan, TrainOutcome


class WanPlan(TrainingPlan):
    """``model_args``: ``{"num_params": N}``."""

    framework = "numpy"

    def init_params(self, seed: int = 0) -> Params:
        rng = np.random.default_rng(seed)
        rows, cols = 1024, 1024
        total = int(self.model_args["num_params"])
        per_block = rows * cols + cols
        params: Params = {}
        for index in range(total // per_block):
            params[f"block{index}.weight"] = rng.random((rows, cols), dtype=np.float32)
            params[f"block{index}.bias"] = rng.random(cols, dtype=np.float32)
        remainder = total - (total // per_block) * per_block
        if remainder:
            params["head.weight"] = rng.random(remainder, dtype=np.float32)
        return params

    def train(
        self,
        params: Params,
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        started = time.perf_counter()
        rng = np.random.default_rng()  # unseeded on purpose: every update differs
        updated = {
            name: value + rng.normal(0.0, 1e-3, value.shape).astype(np.float32)
            for name, value in params.items()
        }
        compute_s = time.perf_counter() - started
        return TrainOutcome(updated, sample_count=1, metrics={"compute_s": compute_s})
