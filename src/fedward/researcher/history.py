"""What happened in each round, per node: the experiment's memory and its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

NodeStatus = Literal["ok", "failed", "late"]


@dataclass
class NodeRound:
    node_id: str
    status: NodeStatus
    sample_count: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""
    error_code: str = ""
    duration_s: float = 0.0


@dataclass
class RoundRecord:
    round_index: int
    nodes: dict[str, NodeRound]
    duration_s: float = 0.0

    @property
    def succeeded(self) -> list[str]:
        return sorted(n for n, r in self.nodes.items() if r.status == "ok")

    @property
    def dropped(self) -> list[str]:
        return sorted(n for n, r in self.nodes.items() if r.status != "ok")

    @property
    def metrics(self) -> dict[str, float]:
        """Sample-weighted average of each metric over the nodes that succeeded."""
        totals: dict[str, float] = {}
        weights: dict[str, float] = {}
        for result in self.nodes.values():
            if result.status != "ok":
                continue
            for name, value in result.metrics.items():
                totals[name] = totals.get(name, 0.0) + value * result.sample_count
                weights[name] = weights.get(name, 0.0) + result.sample_count
        return {name: totals[name] / weights[name] for name in totals if weights[name] > 0}
