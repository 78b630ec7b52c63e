"""A trivial training plan for the researcher's unit tests.

It lives in a file of its own because ``plan_source`` sends the file's imports plus the
class, and reads them from the class's source file. The fake nodes of the tests never
run it: they "train" by arithmetic of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.learning.plan import DatasetView, Progress, TrainingPlan, TrainOutcome


class AddOnePlan(TrainingPlan):
    """Adds one to every parameter; starts from zeros (and the seed in ``offset``)."""

    framework = "numpy"

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {
            "weight": np.zeros((2, 3), dtype=np.float32),
            "offset": np.full(2, float(seed), dtype=np.float64),
        }

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        return TrainOutcome({k: v + 1 for k, v in params.items()}, sample_count=1)
