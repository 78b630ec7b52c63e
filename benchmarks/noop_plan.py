"""``NoOpPlan``: a training plan that moves a model of N float32 parameters and does ~nothing.

It is the workload of the round-overhead benchmark. "Training" adds a tiny step to every
parameter, so a real update of the full size travels back, and the plan measures that
step itself (``compute_s``); the node's worker reports it as ``train_s`` too, which is
what the benchmark subtracts from the round's wall time.

The layout is the one ``benchmarks.aggregation`` uses: dense blocks of a 1024x1024 weight
and a 1024 bias (about 1M parameters each), plus a last tensor with the remainder. The
Flower app (``benchmarks/flower_app``) builds the same tensors in the same order.

Everything the class needs is inside it: only the file's imports travel with the class
(``fedward.learning.plan_source``), and the node runs exactly that text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.core.params import Params
from fedward.learning.plan import DatasetView, Progress, TrainingPlan, TrainOutcome


class NoOpPlan(TrainingPlan):
    """``model_args``: ``{"num_params": N}``."""

    framework = "numpy"

    @staticmethod
    def layout(num_params: int) -> list[tuple[str, tuple[int, ...]]]:
        rows, cols = 1024, 1024
        per_block = rows * cols + cols
        shapes: list[tuple[str, tuple[int, ...]]] = []
        for index in range(num_params // per_block):
            shapes += [(f"block{index}.weight", (rows, cols)), (f"block{index}.bias", (cols,))]
        remainder = num_params - (num_params // per_block) * per_block
        if remainder:
            shapes.append(("head.weight", (remainder,)))
        return shapes

    def init_params(self, seed: int = 0) -> Params:
        rng = np.random.default_rng(seed)
        return {
            name: rng.random(shape, dtype=np.float32)
            for name, shape in self.layout(int(self.model_args["num_params"]))
        }

    def train(
        self,
        params: Params,
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        started = time.perf_counter()
        # Each node's own step: real updates differ, and the upload server must not get
        # to store (or stream) one node's update as another's.
        step = np.float32(1e-6 * (1 + sum(self.node_id.encode()) % 97))
        updated = {name: value + step for name, value in params.items()}
        compute_s = time.perf_counter() - started
        return TrainOutcome(updated, sample_count=1, metrics={"compute_s": compute_s})
