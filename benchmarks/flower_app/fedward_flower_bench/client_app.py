"""The ClientApp: take the global arrays, add a tiny delta, send them back with the
time spent in that "training" so the benchmark can subtract it."""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedward_flower_bench.workload import local_update

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    arrays = msg.content["arrays"].to_numpy_ndarrays()
    started = time.perf_counter()
    updated = local_update(arrays)
    train_s = time.perf_counter() - started
    content = RecordDict(
        {
            "arrays": ArrayRecord(updated),
            "metrics": MetricRecord({"train_s": train_s, "num-examples": 1}),
        }
    )
    return Message(content=content, reply_to=msg)
