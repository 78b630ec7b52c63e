"""The GPU path end to end: a real federation whose nodes train on CUDA.

``python -m benchmarks.gpu_round [--out FILE]`` starts a ``LocalFederation`` (broker,
upload server, two ``fedward node start`` processes, each with ``[gpu] mode = "only"``,
the seed's ``--gpu-only``), runs ``TorchCNNPlan`` on scikit-learn's 8x8 digits for a few
rounds, then the same experiment on CPU nodes, and writes what each node's log says about
the device its jobs ran on, the round times and the held-out accuracy.

Run it on a machine with an NVIDIA GPU (the project's device check); on a machine
without one the GPU nodes fall back to the CPU, and the report says so.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from fedward.demo.data import digits_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.torch_cnn import TorchCNNPlan
from fedward.researcher import Experiment, FedAvg

NODES = ["gpu-node-1", "gpu-node-2"]
TAGS = ["digits", "gpu"]
ROUNDS = 4
_DEVICE_LINE = re.compile(r"\((cuda:\d+|cpu)\)")


def run(workdir: Path, gpu_mode: str) -> dict[str, object]:
    """One experiment on a fresh federation whose nodes have ``[gpu] mode = gpu_mode``."""
    files, held_x, held_y = digits_split(workdir / "data", NODES)
    toml = f'[gpu]\nmode = "{gpu_mode}"\n'
    fed = LocalFederation(
        workdir / "federation",
        node_ids=NODES,
        approval_required=False,
        node_toml={n: toml for n in NODES},
    )
    try:
        fed.start()
        for node_id in NODES:
            fed.add_dataset(node_id, data_type="csv", path=files[node_id], name="digits", tags=TAGS)
        fed.start_nodes()
        experiment = Experiment(
            tags=TAGS,
            training_plan=TorchCNNPlan,
            model_args={"n_classes": 10},
            training_args={
                "batch_size": 32,
                "epochs": 2,
                "optimizer_args": {"lr": 3e-3},
                "use_gpu": True,
            },
            rounds=ROUNDS,
            aggregator=FedAvg(),
            federation=fed.researcher(),
            round_timeout_s=300,
            progress=False,
            checkpoints=False,
            seed=0,
        )
        started = time.perf_counter()
        experiment.run()
        wall_s = time.perf_counter() - started
        accuracy = TorchCNNPlan(experiment.model_args).evaluate(
            experiment.aggregated_params(), held_x, held_y, ["accuracy"]
        )["accuracy"]
        devices = {}
        for node_id in NODES:
            log_file = fed.nodes[node_id].log_file
            text = log_file.read_text(errors="replace") if log_file else ""
            devices[node_id] = sorted(set(_DEVICE_LINE.findall(text))) or ["not logged"]
        durations = [r.duration_s for r in experiment.history]
        return {
            "mode": gpu_mode,
            "devices": devices,
            "accuracy": float(accuracy),
            "wall_s": wall_s,
            "round_s_median": statistics.median(durations[1:] or durations),
            "first_round_s": durations[0],
        }
    finally:
        fed.stop()


def _torch_line() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__}, no CUDA device visible"
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.md"))
    args = parser.parse_args()
    rows = []
    for mode in ("only", "off"):
        with tempfile.TemporaryDirectory(prefix=f"fedward-gpu-{mode}-") as work:
            rows.append(run(Path(work), mode))
            print(rows[-1], flush=True)
    lines = [
        "# The GPU path: a federation whose nodes train on CUDA",
        "",
        f"`python -m benchmarks.gpu_round`, {time.strftime('%Y-%m-%d')}; {_torch_line()}.",
        f"TorchCNNPlan on sklearn's 8x8 digits, {len(NODES)} `fedward node start` processes, "
        f"{ROUNDS} rounds of 2 epochs, researcher asks `use_gpu`; held-out 360 images.",
        "",
        "| node `[gpu] mode` | device in the nodes' job logs | held-out accuracy "
        "| first round s | later rounds s (median) | experiment s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        devices = "; ".join(f"{n}: {', '.join(d)}" for n, d in row["devices"].items())  # type: ignore[attr-defined]
        lines.append(
            f"| {row['mode']} | {devices} | {row['accuracy']:.4f} | {row['first_round_s']:.2f} "
            f"| {row['round_s_median']:.2f} | {row['wall_s']:.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
