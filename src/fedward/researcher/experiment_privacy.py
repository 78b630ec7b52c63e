"""The privacy an experiment asked for, and the epsilon it has spent so far.

``ExperimentPrivacy`` picks the round runner (plain or secure), adds the DP settings to
each train request, and keeps one list of ``PrivacyEvent`` per node:

- central DP: one event per round a node's update was aggregated in, with the noise
  multiplier that protects it in the worst case the round allows
  (``fedward.privacy.noise.node_noise_multiplier``: ``sigma`` without secure
  aggregation, ``sigma * sqrt(t / n)`` with it) and no amplification by sampling;
- local DP: the node's DP-SGD steps and sampling rate, as its plan reported them
  (``dp_steps``, ``dp_sample_rate``).

Each node's epsilon is its events composed by the accountant (``fedward.privacy.
accounting``); the experiment's epsilon is the largest of them. Before a round,
``check_next_round`` stops the experiment (``PrivacyBudgetExhausted``) if the round would
take epsilon past ``max_epsilon``. The settings are in the checkpoint (``config``) and the
events are rebuilt from the history, so a resumed experiment keeps its privacy and
counts what it spent before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from fedward.errors import PrivacyBudgetExhausted, ValidationError
from fedward.learning.dp import DP_SAMPLE_RATE, DP_STEPS
from fedward.learning.plan import TrainingPlan
from fedward.learning.torch_plan import TorchTrainingPlan
from fedward.privacy.accounting import PrivacyEvent, epsilon
from fedward.privacy.noise import node_noise_multiplier
from fedward.researcher.aggregators.base import Aggregator
from fedward.researcher.federation import Federation
from fedward.researcher.history import RoundRecord
from fedward.researcher.monitor import RoundObserver
from fedward.researcher.privacy_settings import CentralDP, DPSettings, LocalDP, SecAgg
from fedward.researcher.rounds import RoundRunner
from fedward.researcher.secure_rounds import SecureRoundRunner


class ExperimentPrivacy:
    def __init__(
        self,
        secure_aggregation: SecAgg | None,
        differential_privacy: DPSettings | None,
        max_epsilon: float | None,
        aggregator: Aggregator,
        training_plan: type[TrainingPlan],
    ) -> None:
        if max_epsilon is not None and differential_privacy is None:
            raise ValidationError("max_epsilon needs differential_privacy (CentralDP or LocalDP)")
        if max_epsilon is not None and not max_epsilon > 0:
            raise ValidationError("max_epsilon must be positive")
        if (
            differential_privacy is not None
            and differential_privacy.mode == "local"
            and not issubclass(training_plan, TorchTrainingPlan)
        ):
            raise ValidationError(
                "LocalDP (DP-SGD through Opacus) needs a TorchTrainingPlan",
                hint="use CentralDP, which works with any plan",
            )
        if secure_aggregation is not None and not aggregator.works_on_mean:
            raise ValidationError(
                f"the {aggregator.name} aggregator needs each node's update, which secure "
                "aggregation never reveals",
                hint="use FedAvg, FedProx, FedAdam, FedYogi or FedAdagrad with secure aggregation",
            )
        self.secure_aggregation = secure_aggregation
        self.differential_privacy = differential_privacy
        self.max_epsilon = max_epsilon
        self.events: dict[str, list[PrivacyEvent]] = {}

    def config(self) -> dict[str, Any]:
        """The settings as JSON, for checkpoints: a resumed experiment keeps its privacy."""
        secagg, dp = self.secure_aggregation, self.differential_privacy
        return {
            "secure_aggregation": dataclasses.asdict(secagg) if secagg is not None else None,
            "differential_privacy": (
                {"mode": dp.mode, **dataclasses.asdict(dp)} if dp is not None else None
            ),
            "max_epsilon": self.max_epsilon,
        }

    @staticmethod
    def settings_from(config: Mapping[str, Any] | None) -> dict[str, Any]:
        """``Experiment`` keyword arguments from ``config()``'s JSON."""
        if not config:
            return {}
        secagg, dp = config.get("secure_aggregation"), config.get("differential_privacy")
        settings: dict[str, Any] = {"max_epsilon": config.get("max_epsilon")}
        if secagg is not None:
            settings["secure_aggregation"] = SecAgg(**secagg)
        if dp is not None:
            dp = dict(dp)
            cls = LocalDP if dp.pop("mode") == "local" else CentralDP
            settings["differential_privacy"] = cls(**dp)
        return settings

    def runner(
        self,
        federation: Federation,
        aggregator: Aggregator,
        observer: RoundObserver,
        deadline_s: float,
    ) -> RoundRunner | SecureRoundRunner:
        if self.secure_aggregation is None:
            return RoundRunner(federation, aggregator, observer, deadline_s)
        return SecureRoundRunner(
            federation, aggregator, observer, deadline_s, self.secure_aggregation
        )

    def request_fields(self) -> dict[str, object]:
        """Fields of each ``TrainRequest`` (secure aggregation's are the runner's)."""
        dp = self.differential_privacy
        return {"differential_privacy": dp.setup()} if dp is not None else {}

    # --- accounting ---------------------------------------------------------------------

    def _central_event(self, cohort_size: int) -> PrivacyEvent:
        assert self.differential_privacy is not None
        secagg = self.secure_aggregation
        threshold = secagg.threshold_for(cohort_size) if secagg is not None else None
        return PrivacyEvent(
            node_noise_multiplier(
                self.differential_privacy.noise_multiplier,
                cohort_size if secagg is not None else None,
                threshold,
            )
        )

    def _round_events(self, record: RoundRecord) -> dict[str, PrivacyEvent]:
        dp = self.differential_privacy
        if dp is None:
            return {}
        asked = [n for n, r in record.nodes.items() if r.status != "offline"]
        events: dict[str, PrivacyEvent] = {}
        for node_id in record.succeeded:
            if dp.mode == "central":
                events[node_id] = self._central_event(len(asked))
                continue
            metrics = record.nodes[node_id].metrics
            if DP_STEPS in metrics and DP_SAMPLE_RATE in metrics:
                events[node_id] = PrivacyEvent(
                    dp.noise_multiplier,
                    min(1.0, max(metrics[DP_SAMPLE_RATE], 1e-12)),
                    int(metrics[DP_STEPS]),
                )
            else:  # a plan that did not run DP-SGD: nothing bounds this node's loss
                events[node_id] = PrivacyEvent(0.0)
        return events

    def node_epsilon(self) -> dict[str, float]:
        dp = self.differential_privacy
        if dp is None:
            return {}
        return {n: epsilon(events, dp.delta) for n, events in sorted(self.events.items())}

    def epsilon(self) -> float | None:
        """The experiment's epsilon so far: the largest node's (None without DP)."""
        if self.differential_privacy is None:
            return None
        return max(self.node_epsilon().values(), default=0.0)

    def account(self, record: RoundRecord) -> None:
        """Add a finished round's events; write the epsilons into its record."""
        dp = self.differential_privacy
        if dp is None:
            return
        for node_id, event in self._round_events(record).items():
            self.events.setdefault(node_id, []).append(event)
        record.node_epsilon = self.node_epsilon()
        record.epsilon = self.epsilon()
        record.delta = dp.delta

    def replay(self, history: Sequence[RoundRecord]) -> None:
        self.events = {}
        for record in history:
            for node_id, event in self._round_events(record).items():
                self.events.setdefault(node_id, []).append(event)

    def check_next_round(self, round_index: int, selected: Sequence[str]) -> None:
        """``PrivacyBudgetExhausted`` if running this round could pass ``max_epsilon``."""
        dp, limit = self.differential_privacy, self.max_epsilon
        if dp is None or limit is None:
            return
        worst = 0.0
        for node_id in selected:
            spent = self.events.get(node_id, [])
            if dp.mode == "central":
                event: PrivacyEvent | None = self._central_event(len(selected))
            else:  # the steps a node takes are known once it trained: assume the last round's
                event = spent[-1] if spent else None
            if event is not None:
                worst = max(worst, epsilon([*spent, event], dp.delta))
        if worst > limit:
            spent_now = self.epsilon() or 0.0
            raise PrivacyBudgetExhausted(
                f"stopped before round {round_index + 1}: it would take epsilon from "
                f"{spent_now:.3g} to {worst:.3g} (delta {dp.delta:g}), past max_epsilon "
                f"{limit:g}",
                epsilon=spent_now,
                max_epsilon=limit,
            )
