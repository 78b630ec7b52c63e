"""The ServerApp: rounds of send-to-all, wait-for-all, weighted mean, each one timed.

It drives ``Grid.send_and_receive`` directly (what Flower's own FedAvg strategy does
inside ``start``) so that the round boundaries are exactly where the clock reads.
Results go to ``results-file`` as JSON after every round.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedward_flower_bench.workload import initial_arrays

app = ServerApp()
NODE_WAIT_S = 120.0


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = context.run_config
    num_params = int(config["num-params"])
    num_rounds = int(config["num-rounds"])
    num_nodes = int(config["num-nodes"])
    results_file = Path(str(config["results-file"]))
    node_ids = _wait_for_nodes(grid, num_nodes)
    arrays = initial_arrays(num_params)
    rounds: list[dict[str, object]] = []
    for round_index in range(num_rounds):
        started = time.perf_counter()
        record = ArrayRecord(arrays)
        messages = [
            Message(
                RecordDict({"arrays": record, "config": ConfigRecord({"round": round_index})}),
                dst_node_id=node_id,
                message_type="train",
                group_id=str(round_index),
            )
            for node_id in node_ids
        ]
        replies = list(grid.send_and_receive(messages))
        train_s: list[float] = []
        sums: list[np.ndarray] | None = None
        total = 0.0
        for reply in replies:
            if reply.has_error():
                continue
            weight = float(reply.content["metrics"]["num-examples"])
            train_s.append(float(reply.content["metrics"]["train_s"]))
            update = reply.content["arrays"].to_numpy_ndarrays()
            if sums is None:
                sums = [np.zeros_like(a) for a in update]
            for acc, value in zip(sums, update, strict=True):
                acc += np.float32(weight) * value
            total += weight
        if sums is not None:
            arrays = [acc / np.float32(total) for acc in sums]
        rounds.append(
            {
                "round": round_index,
                "wall_s": time.perf_counter() - started,
                "replies": len(train_s),
                "train_s": train_s,
            }
        )
        _write(results_file, {"nodes": len(node_ids), "rounds": rounds})


def _wait_for_nodes(grid: Grid, wanted: int) -> list[int]:
    deadline = time.monotonic() + NODE_WAIT_S
    while True:
        node_ids = sorted(grid.get_node_ids())
        if len(node_ids) >= wanted or time.monotonic() > deadline:
            return node_ids[:wanted]
        time.sleep(0.2)


def _write(path: Path, data: dict[str, object]) -> None:
    temp = path.with_suffix(".part")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)
