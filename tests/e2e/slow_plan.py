"""A shipped plan made slow in round 2, so that a researcher can be killed while its
nodes train (the plan's source travels: this file holds imports and the class only)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fedward.core.params import Params
from fedward.learning.plan import DatasetView, Progress, TrainOutcome
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan


class SlowSGDPlan(SGDClassifierPlan):
    """``SGDClassifierPlan`` that waits before training in round index 1: node1 briefly,
    the other nodes long enough to still be busy when a resumed researcher asks again."""

    def train(
        self,
        params: Params,
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        if self.round_index == 1:
            time.sleep(0.5 if self.node_id == "node1" else 6.0)
        return super().train(params, dataset, training_args, progress)
