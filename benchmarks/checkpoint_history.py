"""What a round's checkpoint costs as the history grows; prints a Markdown table.

``experiment_state.save`` is timed in two parts: what runs on the round's thread (the call
itself, a background save as every checkpoint after the first is) and the rest, which the
checkpoint thread finishes (``CheckpointSaver.wait``). The parameters are one tiny array,
so what is left is the state: settings, selection and the history of ``R`` rounds x 10
nodes. No federation, no nodes: the datasets are filled in by hand.

    python -m benchmarks.checkpoint_history [--rounds 10 100 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fedward.core.messages import DatasetSummary
from fedward.learning.plans.sklearn_perceptron import PerceptronPlan
from fedward.researcher import experiment_state
from fedward.researcher.experiment import Experiment
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.selection import rng_state

NODES = 10


def _record(round_index: int) -> RoundRecord:
    nodes = {
        f"node{n:02d}": NodeRound(
            f"node{n:02d}",
            "ok",
            sample_count=100 + n,
            metrics={
                "global_loss": 0.5 / (round_index + 1) + n * 1e-3,
                "local_loss": 0.4 / (round_index + 1) + n * 1e-3,
                "global_accuracy": 0.9 - 1.0 / (round_index + 2),
                "local_accuracy": 0.91 - 1.0 / (round_index + 2),
            },
            timings={"load_s": 0.01 * n, "train_s": 0.2 + 0.01 * n, "save_s": 0.003},
            duration_s=0.25 + 0.01 * n,
            job_id=f"job-{round_index:06d}-{n:02d}",
            threads=4,
        )
        for n in range(NODES)
    }
    return RoundRecord(round_index, nodes, duration_s=0.3 + round_index * 1e-4)


def _experiment(state_dir: Path, rounds: int) -> Experiment:
    experiment = Experiment(
        tags=["bench"],
        training_plan=PerceptronPlan,
        model_args={"n_features": 2, "classes": [0, 1]},
        rounds=rounds + 1,
        state_dir=state_dir,
        progress=False,
    )
    experiment._datasets = {  # as ``nodes()`` would have found them
        f"node{n:02d}": DatasetSummary(
            dataset_id=f"ds-{n}",
            name=f"bench {n}",
            data_type="csv",
            tags=["bench"],
            shape=[100, 3],
            sample_count=100 + n,
        )
        for n in range(NODES)
    }
    experiment._global = {"w": np.zeros(4, dtype=np.float32)}
    return experiment


def measure(rounds: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        experiment = _experiment(Path(scratch), rounds)
        directory = experiment.checkpoint_dir()
        assert directory is not None
        rng = rng_state(experiment._rng)
        # The history up to the timed rounds, and one checkpoint of it (untimed: the first
        # is synchronous, and an incremental writer encodes what it has not seen there).
        experiment.history.extend(_record(index) for index in range(rounds - repeat))
        experiment_state.save(experiment, directory, rng, lambda: None)
        experiment.checkpoint_saver.wait()
        foreground: list[float] = []
        background: list[float] = []
        for index in range(rounds - repeat, rounds):  # then round by round, in the background
            experiment.history.append(_record(index))
            start = time.perf_counter()
            experiment_state.save(experiment, directory, rng, lambda: None)
            middle = time.perf_counter()
            experiment.checkpoint_saver.wait()
            foreground.append(middle - start)
            background.append(time.perf_counter() - middle)
        last = experiment.last_checkpoint
        assert last is not None
        size = (last / "state.json").stat().st_size
        experiment.close()
    return {
        "rounds": rounds,
        "round_thread_ms": statistics.median(foreground) * 1e3,
        "checkpoint_thread_ms": statistics.median(background) * 1e3,
        "state_json_kb": size / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkpoint_history")
    parser.add_argument("--rounds", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=5, help="checkpoints timed (the last)")
    args = parser.parse_args(argv)
    print(
        f"| rounds x {NODES} nodes | round's thread (ms) | checkpoint thread (ms) "
        "| state.json (KiB) |"
    )
    print("|---:|---:|---:|---:|")
    for rounds in args.rounds:
        row = measure(rounds, min(args.repeat, rounds - 1))
        print(
            f"| {rounds} | {row['round_thread_ms']:.2f} | {row['checkpoint_thread_ms']:.2f} "
            f"| {row['state_json_kb']:.0f} |"
        )


if __name__ == "__main__":
    main()
