"""Plans for the privacy tests: updates that are different on every node, reproducible,
and cheap, so a secure round can be compared with a plain one coordinate by coordinate."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.learning.plan import DatasetView, Progress, TrainingPlan, TrainOutcome


class ShiftPlan(TrainingPlan):
    """Adds to the parameters a vector drawn from a seed made of the node's data file; the
    sample count is the file's data rows. ``model_args["size"]``: the weight's length."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        size = int(self.model_args.get("size", 1000))
        return {
            "weight": np.zeros(size, dtype=np.float32),
            "bias": np.full(3, 0.5, dtype=np.float64),
        }

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        data = dataset.path.read_bytes()
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(data).digest()[:8], "big"))
        shifted = {
            name: (value + rng.normal(0.0, 1.0, size=value.shape)).astype(value.dtype)
            for name, value in sorted(params.items())
        }
        rows = data.count(b"\n") - 1
        return TrainOutcome(shifted, rows, {"rows": float(rows)})
