"""Fed-BioMed's side of the benchmark: timed rounds of the no-op workload (own venv only).

Run by ``benchmarks/fedbiomed_rounds.py`` with ``benchmarks/.fedbiomed-venv/bin/python``
and ``FBM_RESEARCHER_COMPONENT_ROOT`` set; never imported by fedward. The model is the
layout of ``benchmarks/noop_plan.py`` (dense blocks of a 1024x1024 weight and a 1024
bias, then the remainder; float32) as torch parameters, and "training" is one SGD step
of ``loss = -sum(parameters)`` with ``lr = 1e-6``: every parameter moves by +1e-6, as in
fedward's and Flower's no-op step. Each round is timed around ``Experiment.run_once``
(request, node training, replies, FedAvg); the nodes' own ``rtime_training`` (the time
of their ``training_routine``) is the local compute that is subtracted.

    python researcher_bench.py NUM_PARAMS NUM_NODES ROUNDS RESULTS_JSON TAG
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from fedbiomed.common.datamanager import DataManager
from fedbiomed.common.dataset import TabularDataset
from fedbiomed.common.training_plans import TorchTrainingPlan
from fedbiomed.researcher.aggregators.fedavg import FedAverage
from fedbiomed.researcher.federated_workflows import Experiment
from torch import nn

NODE_WAIT_S = 120.0


class NoOpTorchPlan(TorchTrainingPlan):
    """N float32 parameters in dense blocks; one step of +1e-6 on each."""

    def init_model(self, model_args):
        return self.Net(model_args)

    def init_dependencies(self):
        return [
            "from torch import nn",
            "from fedbiomed.common.dataset import TabularDataset",
        ]

    class Net(nn.Module):
        def __init__(self, model_args):
            super().__init__()
            num_params = int(model_args["num_params"])
            rows, cols = 1024, 1024
            per_block = rows * cols + cols
            generator = torch.Generator().manual_seed(0)
            tensors = []
            for _ in range(num_params // per_block):
                tensors.append(torch.rand((rows, cols), generator=generator))
                tensors.append(torch.rand((cols,), generator=generator))
            remainder = num_params - (num_params // per_block) * per_block
            if remainder:
                tensors.append(torch.rand((remainder,), generator=generator))
            self.blocks = nn.ParameterList([nn.Parameter(t) for t in tensors])

        def forward(self, x):
            return x

    def training_step(self, data, target):
        # d(loss)/d(p) = -1 for every parameter: SGD with lr=1e-6 adds 1e-6 to each.
        return -sum(p.sum() for p in self.model().parameters())

    def training_data(self):
        dataset = TabularDataset(
            input_columns=["x"],
            target_columns=["y"],
            transform=lambda xs: torch.as_tensor(xs, dtype=torch.float32),
            target_transform=lambda xs: torch.as_tensor(xs, dtype=torch.float32),
        )
        return DataManager(dataset=dataset, shuffle=False)


def main() -> int:
    num_params, num_nodes, rounds = (int(a) for a in sys.argv[1:4])
    results_file = Path(sys.argv[4])
    tag = sys.argv[5]
    experiment = Experiment(
        tags=[tag],
        training_plan_class=NoOpTorchPlan,
        model_args={"num_params": num_params},
        training_args={
            "loader_args": {"batch_size": 1},
            "optimizer_args": {"lr": 1e-6},
            "num_updates": 1,
            "test_ratio": 0.0,
        },
        round_limit=rounds,
        aggregator=FedAverage(),
        node_selection_strategy=None,
        tensorboard=False,
        retain_full_history=False,
    )
    deadline = time.monotonic() + NODE_WAIT_S
    while len(experiment.all_federation_nodes()) < num_nodes:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {experiment.all_federation_nodes()} of {num_nodes} nodes")
        time.sleep(1.0)
        experiment.set_training_data(None, from_tags=True)
    measured = []
    for round_index in range(rounds):
        started = time.perf_counter()
        experiment.run_once()
        wall_s = time.perf_counter() - started
        replies = experiment.training_replies()[experiment.round_current() - 1]
        train_s = [float(r["timing"]["rtime_training"]) for r in replies.values()]
        measured.append(
            {"round": round_index, "wall_s": wall_s, "replies": len(train_s), "train_s": train_s}
        )
        temp = results_file.with_suffix(".part")
        temp.write_text(json.dumps({"nodes": len(replies), "rounds": measured}))
        os.replace(temp, results_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
