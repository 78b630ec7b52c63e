"""Researcher-side FedAvg: throughput and peak memory while aggregating N node updates.

The researcher must aggregate in O(model) memory, not O(nodes x model). This measures it
the way ``Experiment`` does a round: the global parameters are held in memory, each update
arrives as a safetensors file (a streamed download, emulated by a kernel-side file copy),
and is folded in tensor by tensor through ``open_params`` + ``FedAvg.add``, then deleted;
``FedAvg.finish`` gives the next global parameters.

Each case runs in a fresh Python process, whose peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``) is reported as it is: interpreter, imports, global
parameters and everything else included, nothing subtracted. The target is a peak below
3x the model size.

    python -m benchmarks.aggregation              # 25M float32 parameters, N = 2 5 10 20 50
    python -m benchmarks.aggregation --quick      # 1M parameters
    python -m benchmarks.aggregation --updates 20 --params 25000000

Writes ``benchmarks/results/aggregation.json`` (``aggregation-quick.json`` with
``--quick``; ``--output`` to change) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

KEY_CASE = {"params": 25_000_000, "updates": 20}
DEFAULT_UPDATES = [2, 5, 10, 20, 50]
QUICK_PARAMS = 1_000_000
BLOCK = (1024, 1024)  # a dense layer: weight 1024x1024 + bias 1024
SOURCE_FILES = 2  # distinct update files, used in turn (what a node sends does not matter)
RATIO_TARGET = 3.0
RESULTS_DIR = Path(__file__).resolve().parent / "results"

Layout = list[tuple[str, tuple[int, ...]]]


def model_layout(n_params: int) -> Layout:
    """Dense blocks of ~1M parameters, and a last tensor holding the remainder."""
    per_block = BLOCK[0] * BLOCK[1] + BLOCK[1]
    layout: Layout = []
    for index in range(n_params // per_block):
        layout += [(f"block{index}.weight", BLOCK), (f"block{index}.bias", (BLOCK[1],))]
    remainder = n_params - sum(int(np.prod(shape)) for _, shape in layout)
    if remainder:
        layout.append(("head.weight", (remainder,)))
    return layout


def write_update(path: Path, layout: Layout, seed: int) -> None:
    from fedward.protocol.params_wire import save_params

    rng = np.random.default_rng(seed)
    save_params({n: rng.standard_normal(s, dtype=np.float32) for n, s in layout}, path)


# --- one case, in a fresh process ------------------------------------------------------


def _status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (0 where there is no procfs)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def run_case(n_params: int, updates: int, sources: list[Path], scratch: Path) -> dict[str, Any]:
    from fedward.protocol.params_wire import open_params
    from fedward.researcher import FedAvg

    layout = model_layout(n_params)
    baseline_rss = _status_kib("VmRSS") * 1024
    # The Experiment holds the global parameters all round (it made and uploaded them).
    global_params = {name: np.full(shape, 0.5, dtype=np.float32) for name, shape in layout}
    peak_after_global = _peak_rss_bytes()
    weights = [float(10 + index) for index in range(updates)]
    aggregator = FedAvg()
    aggregator.begin_round(global_params, 0)
    download_s = fold_s = 0.0
    mapped_file_max = 0
    for index in range(updates):
        path = scratch / f"node{index}.safetensors"
        started = time.perf_counter()
        shutil.copyfile(sources[index % len(sources)], path)
        download_s += time.perf_counter() - started
        started = time.perf_counter()
        with open_params(path) as update:
            aggregator.add(f"node{index}", update, weights[index], update.layout, {})
            # Pages of the memory-mapped update that reading made resident, before close.
            mapped_file_max = max(mapped_file_max, _status_kib("RssFile") * 1024)
        fold_s += time.perf_counter() - started
        path.unlink()
    peak_after_adds = _peak_rss_bytes()
    started = time.perf_counter()
    result = aggregator.finish()
    finish_s = time.perf_counter() - started
    peak = _peak_rss_bytes()
    check_smallest_tensor(result, layout, sources, weights)
    model_bytes = n_params * 4
    return {
        "params": n_params,
        "updates": updates,
        "model_bytes": model_bytes,
        "tensors": len(layout),
        "largest_tensor_bytes": max(int(np.prod(s)) for _, s in layout) * 4,
        "peak_rss_bytes": peak,
        "ratio": peak / model_bytes,
        "fold_gb_per_s": updates * model_bytes / fold_s / 1e9,
        "fold_s": fold_s,
        "download_s": download_s,
        "finish_s": finish_s,
        # Each first touch of a page (fresh allocation, mapped file) costs a fault: in a
        # VM this, not arithmetic, bounds the fold rate.
        "minor_page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
        "phases": {
            "baseline_rss_bytes": baseline_rss,
            "peak_after_global_bytes": peak_after_global,
            "peak_after_adds_bytes": peak_after_adds,
            "peak_after_finish_bytes": peak,
            "max_rss_file_during_add_bytes": mapped_file_max,
        },
    }


def check_smallest_tensor(
    result: dict[str, np.ndarray], layout: Layout, sources: list[Path], weights: list[float]
) -> None:
    """The arithmetic is right: recompute one tensor's weighted mean directly."""
    from fedward.protocol.params_wire import open_params

    name = min(layout, key=lambda entry: int(np.prod(entry[1])))[0]
    values = []
    for source in sources:
        with open_params(source) as update:
            values.append(update[name].astype(np.float64))
    expected = sum(w * values[i % len(values)] for i, w in enumerate(weights)) / sum(weights)
    if not np.allclose(result[name], expected, rtol=1e-4, atol=1e-5):
        raise SystemExit(f"wrong aggregate for {name}")


# --- the driver ---------------------------------------------------------------------------


def spawn_case(n_params: int, updates: int, sources: list[Path], scratch: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.aggregation", "--child"]
    command += ["--params", str(n_params), "--updates", str(updates), "--scratch", str(scratch)]
    command += ["--sources", *map(str, sources)]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"case N={updates} failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def machine() -> dict[str, Any]:
    import safetensors

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        # Other work on the machine slows throughput (not memory): say how busy it was.
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def markdown_table(cases: list[dict[str, Any]]) -> str:
    lines = [
        "| updates | model MB | peak RSS MB | RSS / model | fold GB/s | fold s | download s "
        "| page faults |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        lines.append(
            f"| {case['updates']} | {case['model_bytes'] / 1e6:.0f} "
            f"| {case['peak_rss_bytes'] / 1e6:.0f} | {case['ratio']:.2f}x "
            f"| {case['fold_gb_per_s']:.2f} | {case['fold_s']:.2f} | {case['download_s']:.2f} "
            f"| {case['minor_page_faults']:,} |"
        )
    return "\n".join(lines)


def phases_table(cases: list[dict[str, Any]]) -> str:
    lines = [
        "| updates | after imports | peak with global | peak after adds | peak after finish "
        "| mapped file pages (max) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        p = {k: v / 1e6 for k, v in case["phases"].items()}
        lines.append(
            f"| {case['updates']} | {p['baseline_rss_bytes']:.0f} "
            f"| {p['peak_after_global_bytes']:.0f} | {p['peak_after_adds_bytes']:.0f} "
            f"| {p['peak_after_finish_bytes']:.0f} | {p['max_rss_file_during_add_bytes']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aggregation", description=__doc__)
    parser.add_argument("--params", type=int, default=KEY_CASE["params"])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PARAMS:,} parameters")
    parser.add_argument("--updates", type=int, nargs="+", default=DEFAULT_UPDATES)
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file (default: results/aggregation.json, or aggregation-quick.json)",
    )
    parser.add_argument("--workdir", type=Path, help="where update files go (default: a temp dir)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sources", type=Path, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n_params = QUICK_PARAMS if args.quick else args.params
    output = args.output or RESULTS_DIR / (
        "aggregation-quick.json" if args.quick else "aggregation.json"
    )

    if args.child:
        print(json.dumps(run_case(n_params, args.updates[0], args.sources, args.scratch)))
        return 0

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    workdir = Path(tempfile.mkdtemp(prefix="fedward-bench-", dir=args.workdir))
    try:
        layout = model_layout(n_params)
        sources = [workdir / f"source{i}.safetensors" for i in range(SOURCE_FILES)]
        for seed, path in enumerate(sources):
            write_update(path, layout, seed)
        scratch = workdir / "round"
        scratch.mkdir()
        cases = []
        for updates in args.updates:
            case = spawn_case(n_params, updates, sources, scratch)
            cases.append(case)
            print(f"N={updates}: peak {case['peak_rss_bytes'] / 1e6:.0f} MB", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "load_average_1m_before": load_before,
        "benchmark": "researcher FedAvg aggregation (open_params + FedAvg.add, streamed)",
        "ratio_target": RATIO_TARGET,
        "key_case": KEY_CASE,
        "machine": machine(),
        "cases": cases,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"FedAvg of float32 updates, {n_params:,} parameters ({len(layout)} tensors)\n")
    print(markdown_table(cases))
    print("\nWhere the peak is reached (MB, cumulative peaks of the same process):\n")
    print(phases_table(cases))
    over = [c["updates"] for c in cases if c["ratio"] >= RATIO_TARGET]
    if over:
        print(f"\nRSS / model >= {RATIO_TARGET}x for N = {over}")
    print(f"\nwritten to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
