"""Secure aggregation's cost: a SecAgg round against a plain round, on a real federation.

One ``bench_federation`` (Mosquitto, upload server, one node process per node) of the
largest node count; for each node count, the same ``NoOpPlan`` model (1M float32
parameters by default) runs plain FedAvg rounds and ``SecAgg`` rounds (threshold: a
majority), one warm-up round each, then ``rounds`` timed rounds, alternating so that a
drift of the machine's load hits both alike. The ratio of the median wall times is the
secure round's overhead; its growth with the number of nodes comes from the pairwise
masks (each node expands n - 1 seeds) and the extra request/reply steps.

    python -m benchmarks.secure_aggregation --nodes 5 10 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.fedward_rounds import TAGS, bench_federation, node_names, remove_parameter_blobs
from benchmarks.noop_plan import NoOpPlan
from benchmarks.stats import summary
from fedward.core.messages import ScalarEvent
from fedward.demo.local_federation import LocalFederation
from fedward.researcher import Experiment, FedAvg, SecAgg
from fedward.researcher.federation import Federation
from fedward.researcher.history import RoundRecord


class StepClock:
    """When the last node reached each step of a secure round (seconds from its start)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.reached: dict[str, float] = {}

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        self.started = time.perf_counter()
        self.reached = {}

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        self.reached[status] = time.perf_counter() - self.started

    def scalar(self, node_id: str, event: ScalarEvent) -> None: ...

    def round_finished(self, record: RoundRecord) -> None:
        self.reached["finished"] = time.perf_counter() - self.started

    def close(self) -> None: ...


def _experiment(
    federation: Federation,
    nodes: list[str],
    num_params: int,
    secure: bool,
    clock: StepClock | None = None,
) -> Experiment:
    return Experiment(
        tags=TAGS,
        training_plan=NoOpPlan,
        model_args={"num_params": num_params},
        rounds=1000,
        aggregator=FedAvg(),
        nodes=nodes,
        round_timeout_s=600,
        federation=federation,
        progress=False,
        checkpoints=False,
        secure_aggregation=SecAgg(step_timeout_s=300) if secure else None,
        observers=[clock] if clock is not None else [],
    )


def measure_nodes(
    fed: LocalFederation, nodes: list[str], num_params: int, rounds: int
) -> dict[str, Any]:
    researcher = fed.researcher()
    plain = _experiment(researcher, nodes, num_params, secure=False)
    clock = StepClock()
    secure = _experiment(researcher, nodes, num_params, secure=True, clock=clock)
    times: dict[str, list[float]] = {"plain": [], "secure": []}
    steps: dict[str, list[float]] = {}
    for index in range(rounds + 1):
        for name, experiment in (("plain", plain), ("secure", secure)):
            started = time.perf_counter()
            record = experiment.run_once()
            elapsed = time.perf_counter() - started
            remove_parameter_blobs(fed)
            if len(record.succeeded) != len(nodes):
                raise RuntimeError(f"{name} round lost nodes: {record.dropped}")
            if index:  # the first round of each starts the nodes' job workers
                times[name].append(elapsed)
                if name == "secure":
                    for step, at in clock.reached.items():
                        steps.setdefault(step, []).append(at)
    plain_s, secure_s = summary(times["plain"]), summary(times["secure"])
    return {
        "nodes": len(nodes),
        "num_params": num_params,
        "plain_wall_s": plain_s,
        "secure_wall_s": secure_s,
        "ratio": secure_s["median"] / plain_s["median"],
        # training -> keys (trained, keys published) -> shares -> masked -> ok (unmasked)
        "secure_steps_s": {step: summary(at)["median"] for step, at in steps.items()},
    }


def measure_secure_aggregation(
    workdir: Path, node_counts: list[int], num_params: int, rounds: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"cells": []}
    with bench_federation(workdir, max(node_counts)) as fed:
        for count in node_counts:
            print(f"secure aggregation, {count} nodes ...", file=sys.stderr, flush=True)
            try:
                out["cells"].append(measure_nodes(fed, node_names(count), num_params, rounds))
            except Exception as exc:  # one failed cell must not lose the others
                out["cells"].append({"nodes": count, "error": repr(exc)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.secure_aggregation")
    parser.add_argument("--nodes", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--num-params", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-work") / "secagg")
    args = parser.parse_args(argv)
    result = measure_secure_aggregation(args.workdir, args.nodes, args.num_params, args.rounds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
