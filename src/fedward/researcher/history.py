"""What happened in each round, per node: the experiment's memory and its report.

A node's status in a round:

- ``ok``       its update was aggregated;
- ``failed``   it answered with an error, sent an update that was refused, or went
  offline while training;
- ``late``     no answer before the round deadline;
- ``offline``  a candidate known to be offline when the round started: not asked.

Each node round also records the node's job id and the threads its training used:
floating-point sums depend on how work is split between threads, so the same data and
seed give the same parameters only with the same thread counts.

Metrics are whatever the node's plan measured: ``global_<metric>`` (the received global
parameters on the node's held-out share, before local training) and ``local_<metric>``
(after). ``RoundRecord.metrics`` is their sample-weighted mean over the nodes that
succeeded. Records round-trip through JSON for checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NoReturn, cast

from fedward.errors import UnknownName

NodeStatus = Literal["ok", "failed", "late", "offline"]


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
    job_id: str = ""  # the node's id for the job: what ``fedward node jobs`` shows there
    threads: int = 0  # threads the node trained with (results depend on it; 0: unknown)

    def __getitem__(self, key: object) -> NoReturn:
        # Fed-BioMed's training replies were dicts (reply['timing']['rtime_training']).
        raise UnknownName(
            f"a NodeRound is not a dict: read its attributes (reply[{key!r}] is Fed-BioMed's)",
            hint="node_id, status, sample_count, metrics, timings (load_s, train_s, save_s), "
            "duration_s, job_id, threads, error",
        )


@dataclass
class RoundRecord:
    round_index: int
    nodes: dict[str, NodeRound]
    duration_s: float = 0.0
    #: Under differential privacy: the experiment's epsilon after this round (at ``delta``),
    #: and each node's (see ``experiment_privacy``).
    epsilon: float | None = None
    delta: float | None = None
    node_epsilon: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> list[str]:
        return sorted(n for n, r in self.nodes.items() if r.status == "ok")

    @property
    def dropped(self) -> list[str]:
        """Nodes that were candidates this round but whose update was not aggregated."""
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoundRecord:
        nodes = {
            node_id: NodeRound(**{**result, "status": cast(NodeStatus, result["status"])})
            for node_id, result in data["nodes"].items()
        }
        return cls(
            int(data["round_index"]),
            nodes,
            float(data.get("duration_s", 0.0)),
            epsilon=data.get("epsilon"),
            delta=data.get("delta"),
            node_epsilon=dict(data.get("node_epsilon") or {}),
        )


def metric_names(history: Sequence[RoundRecord]) -> list[str]:
    """Every metric any node reported, sorted."""
    return sorted({name for record in history for r in record.nodes.values() for name in r.metrics})


def node_series(history: Sequence[RoundRecord], metric: str) -> dict[str, list[tuple[int, float]]]:
    """Per node, ``(round index, value)`` of one metric over the rounds it succeeded in."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in history:
        for node_id, result in sorted(record.nodes.items()):
            if result.status == "ok" and metric in result.metrics:
                series.setdefault(node_id, []).append((record.round_index, result.metrics[metric]))
    return series


def aggregate_series(history: Sequence[RoundRecord], metric: str) -> list[tuple[int, float]]:
    """``(round index, sample-weighted mean)`` of one metric."""
    return [(r.round_index, r.metrics[metric]) for r in history if metric in r.metrics]
