"""A developer's quick look at fedward's round overhead: a few cells in one federation.

    python -m benchmarks.quick_round 1e6x2 25e6x2 1e6x10

Prints, per cell (parameters x nodes), the median round overhead and the median of each
phase that ``make bench`` reports (``fedward_rounds``), in one line, in about a minute.
Nothing is written: for comparing two commits on the same machine, run each twice,
alternating, on an idle machine. ``make bench`` remains the published figure.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.fedward_rounds import CellResult, bench_federation, measure_cell, node_names


def _cell(text: str) -> tuple[int, int]:
    params, _, nodes = text.lower().partition("x")
    return int(float(params)), int(nodes)


def _line(result: CellResult) -> str:
    def median(field: str) -> float:
        return statistics.median(getattr(sample, field) for sample in result.rounds)

    phases = [
        ("load", "node_load_s"),
        ("save", "node_save_s"),
        ("up", "researcher_upload_s"),
        ("down", "researcher_download_s"),
        ("ckpt", "checkpoint_s"),
    ]
    fastest = min(sample.overhead_s for sample in result.rounds)
    return (
        f"{result.num_params / 1e6:g}M x{result.nodes}: overhead {median('overhead_s'):.3f} "
        f"(min {fastest:.3f}) "
        + " ".join(f"{name} {median(field):.3f}" for name, field in phases)
        + f" first {result.warmup.wall_s:.3f}"
    )


def main(argv: list[str]) -> None:
    cells = [_cell(text) for text in argv] or [(1_000_000, 2)]
    with (
        tempfile.TemporaryDirectory(dir="/tmp") as work,
        bench_federation(Path(work), max(n for _, n in cells)) as federation,
    ):
        for params, nodes in cells:
            rounds = 5 if params > 10**7 else 9
            result = measure_cell(federation, node_names(nodes), params, rounds=rounds)
            print(_line(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
