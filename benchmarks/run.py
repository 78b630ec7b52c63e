"""``make bench``: every benchmark in one invocation, then ``results/latest.{json,md}``.

    python -m benchmarks.run                 # the full run (< 30 min on 2 cores)
    python -m benchmarks.run --quick         # 1M parameters, few rounds: a smoke test
    python -m benchmarks.run --skip flower --skip tunnel
    python -m benchmarks.run --only fedward --cells 1Mx2   # one section, one cell

Sections, in order: fedward rounds with their floors (through the upload server, and the
raw loopback-TCP floor; one 10-node federation serves the 2- and 10-node cells), the
loopback half of the tunnel test (on that federation's upload server), Flower,
Fed-BioMed, aggregation (``benchmarks.aggregation`` in its own processes), secure
aggregation against plain rounds (1M parameters x 5, 10, 20 nodes), scale (a 50-node
federation), the WireGuard lab, WAN rounds per update codec on shaped links
(``benchmarks.wan``, also written to ``results/wan.{json,md}``), and a 1 GB model round's
memory (``large``). A section that fails is recorded with its error and the run goes on.
Work files go to ``.bench-work/`` and are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks import fedbiomed_rounds, flower_rounds, large_model, report, tunnel, wan
from benchmarks.fedward_rounds import (
    bench_federation,
    measure_cell,
    node_names,
    remove_parameter_blobs,
)
from benchmarks.floor import measure_floor
from benchmarks.noop_plan import NoOpPlan
from benchmarks.raw_floor import measure_raw_floor
from benchmarks.scale import measure_scale
from benchmarks.secure_aggregation import measure_secure_aggregation
from fedward.demo.local_federation import LocalFederation
from fedward.protocol.params_wire import params_to_bytes

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SECTIONS = (
    "fedward",
    "flower",
    "fedbiomed",
    "aggregation",
    "secagg",
    "scale",
    "tunnel",
    "wan",
    "large",
)


@dataclass(frozen=True)
class Cell:
    num_params: int
    nodes: int
    rounds: int  # timed rounds, after one warm-up round
    floor_repeats: int = 3
    flower_rounds: int | None = 5  # None: Flower is not run for this cell
    flower_skip_reason: str = ""
    fedbiomed_rounds: int | None = None  # None: Fed-BioMed is not run for this cell
    fedbiomed_skip_reason: str = (
        "not run: Fed-BioMed is measured for the 2-node cells (10 nodes would be 10 "
        "torch-importing node processes on 2 cores)"
    )

    @property
    def label(self) -> str:
        return f"{self.num_params / M:g}Mx{self.nodes}"


M = 1_000_000
FULL_CELLS = (
    Cell(1 * M, 2, 9, fedbiomed_rounds=5),
    Cell(1 * M, 10, 9),
    Cell(25 * M, 2, 5, fedbiomed_rounds=3),
    Cell(25 * M, 10, 5, flower_rounds=2),
    Cell(100 * M, 2, 5, flower_rounds=2),
    Cell(
        100 * M,
        10,
        3,  # ~50 s per round on 2 cores: 3 timed rounds keep the run under 30 min
        floor_repeats=2,
        flower_rounds=None,
        flower_skip_reason="skipped to keep make bench under 30 min: Flower's 25M x 10 "
        "round already takes 35-55 s here, and 100M x 10 moves 8.8 GB a round",
    ),
)
QUICK_CELLS = (
    Cell(1 * M, 2, 3, floor_repeats=2, flower_rounds=2, fedbiomed_rounds=2),
    Cell(1 * M, 3, 3, 2, 2),
)


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": psutil.virtual_memory().total / 1e9,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "load_before": round(os.getloadavg()[0], 2),
    }


def _tokens(fed: LocalFederation) -> dict[str, str]:
    peers = [fed.researcher_id, *fed.node_ids]
    return {p: (fed.secrets_dir / f"{p}.upload-token").read_text().strip() for p in peers}


def run_fedward(cells: tuple[Cell, ...], workdir: Path, tunnel_mb: int) -> dict[str, Any]:
    max_nodes = max(cell.nodes for cell in cells)
    out: dict[str, Any] = {"cells": []}
    started = time.perf_counter()
    with bench_federation(workdir / "fedward", max_nodes) as fed:
        out["nodes_online_s"] = time.perf_counter() - started
        for cell in cells:
            label = f"{cell.num_params / M:g}M x {cell.nodes}"
            print(f"fedward {label} ...", file=sys.stderr, flush=True)
            nodes = node_names(cell.nodes)
            try:
                result = measure_cell(fed, nodes, cell.num_params, cell.rounds).to_json()
                params = NoOpPlan({"num_params": cell.num_params}).init_params()
                result["floor"] = measure_floor(
                    fed.uploads_url,
                    _tokens(fed),
                    fed.researcher_id,
                    nodes,
                    params,
                    cell.floor_repeats,
                    workdir,
                    after_each=lambda: remove_parameter_blobs(fed),
                )
                payload = params_to_bytes(params)
                del params
                print(f"raw floor {label} ...", file=sys.stderr, flush=True)
                result["raw_floor"] = measure_raw_floor(
                    payload, cell.nodes, max(3, cell.floor_repeats)
                )
                del payload
            except Exception as exc:  # one failed cell must not lose the others
                result = {"num_params": cell.num_params, "nodes": cell.nodes, "error": repr(exc)}
            out["cells"].append(result)
        print("tunnel, loopback half ...", file=sys.stderr, flush=True)
        try:
            out["loopback_transfer"] = tunnel.loopback_transfer(
                fed.uploads_url,
                fed.secrets_dir / f"{fed.researcher_id}.upload-token",
                fed.secrets_dir / f"{fed.node_ids[0]}.upload-token",
                fed.node_ids[0],
                tunnel_mb,
                repeats=3,
            )
        except Exception as exc:
            out["loopback_transfer"] = {"measured": False, "reason": repr(exc)}
    return out


def run_flower(cells: tuple[Cell, ...], workdir: Path) -> dict[str, Any]:
    try:
        version = flower_rounds.ensure_flower()
    except flower_rounds.FlowerUnavailable as exc:
        return {"error": str(exc), "cells": []}
    out: dict[str, Any] = {"version": version, "cells": []}
    max_nodes = max(cell.nodes for cell in cells)
    with flower_rounds.FlowerDeployment(workdir / "flower", max_nodes) as deployment:
        for cell in cells:
            key = {"num_params": cell.num_params, "nodes": cell.nodes}
            if cell.flower_rounds is None:
                out["cells"].append({**key, "skipped": cell.flower_skip_reason})
                continue
            print(
                f"Flower {cell.num_params / M:g}M x {cell.nodes} ...", file=sys.stderr, flush=True
            )
            try:
                out["cells"].append(
                    flower_rounds.flower_cell(
                        deployment, cell.num_params, cell.nodes, cell.flower_rounds, 900
                    )
                )
            except Exception as exc:
                out["cells"].append({**key, "error": repr(exc)})
    return out


def run_aggregation(workdir: Path, quick: bool) -> dict[str, Any]:
    output = workdir / "aggregation.json"
    command = [sys.executable, "-m", "benchmarks.aggregation", "--output", str(output)]
    done = subprocess.run(
        [*command, *(["--quick"] if quick else [])],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not output.exists():
        return {"error": f"benchmarks.aggregation failed: {done.stderr.strip()[-1000:]}"}
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def _selected(args: argparse.Namespace) -> tuple[set[str], tuple[Cell, ...]]:
    """The sections and cells this invocation runs (``--only``, ``--skip``, ``--cells``)."""
    sections = set(args.only or SECTIONS) - set(args.skip)
    cells: tuple[Cell, ...] = QUICK_CELLS if args.quick else FULL_CELLS
    if args.cells:
        wanted = {label.replace(" ", "").lower() for label in args.cells}
        known = {cell.label.lower() for cell in cells}
        unknown = wanted - known
        if unknown:
            raise SystemExit(f"unknown cells {sorted(unknown)}; known: {sorted(known)}")
        cells = tuple(cell for cell in cells if cell.label.lower() in wanted)
    return sections, cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1M parameters, few rounds")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    parser.add_argument(
        "--only", action="append", default=[], choices=SECTIONS, help="run only these sections"
    )
    parser.add_argument(
        "--cells", action="append", default=[], help="only these cells, e.g. 1Mx2 (repeatable)"
    )
    parser.add_argument("--scale-nodes", type=int, default=None)
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="default: benchmarks/results/ (latest.*); .bench-work/ with --quick (quick.*) "
        "or with --only/--cells (partial.*)",
    )
    args = parser.parse_args(argv)
    sections, cells = _selected(args)
    partial = bool(args.only or args.cells)
    scale_nodes = args.scale_nodes or (5 if args.quick else 50)
    tunnel_mb = 10 if args.quick else 100
    workdir = REPO / ".bench-work" / f"run-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "partial": {"sections": sorted(sections), "cells": [c.label for c in cells]}
        if partial
        else None,
        "machine": machine(),
    }
    try:
        if "fedward" in sections:
            results["fedward"] = run_fedward(cells, workdir, tunnel_mb)
        if "flower" in sections:
            results["flower"] = run_flower(cells, workdir)
        if "fedbiomed" in sections:
            results["fedbiomed"] = fedbiomed_rounds.run_fedbiomed(cells, workdir)
        if "aggregation" in sections:
            print("aggregation ...", file=sys.stderr, flush=True)
            results["aggregation"] = run_aggregation(workdir, args.quick)
        if "secagg" in sections:
            try:
                results["secagg"] = measure_secure_aggregation(
                    workdir / "secagg",
                    [5] if args.quick else [5, 10, 20],
                    M,
                    2 if args.quick else 3,
                )
            except Exception as exc:
                results["secagg"] = {"error": repr(exc)}
        if "scale" in sections:
            print(f"scale, {scale_nodes} nodes ...", file=sys.stderr, flush=True)
            try:
                results["scale"] = measure_scale(workdir / "scale", scale_nodes, M)
            except Exception as exc:
                results["scale"] = {"error": repr(exc)}
        if "tunnel" in sections:
            print("tunnel, WireGuard lab ...", file=sys.stderr, flush=True)
            results["tunnel"] = {
                "size_mb": tunnel_mb,
                "loopback": results.get("fedward", {}).get(
                    "loopback_transfer", {"measured": False, "reason": "fedward section skipped"}
                ),
                "lab": tunnel.lab_transfer(workdir, tunnel_mb, repeats=3),
            }
        if "wan" in sections:
            print("wan, shaped links per update codec ...", file=sys.stderr, flush=True)
            results["wan"] = wan.run_wan(workdir / "wan", quick=args.quick)
            if not args.quick:
                wan.write_results(results["wan"], RESULTS)
        if "large" in sections:
            print("large model ...", file=sys.stderr, flush=True)
            try:
                results["large"] = large_model.measure_large_in_child(
                    workdir / "large",
                    num_params=25 * M if args.quick else large_model.LARGE_PARAMS,
                    write_to=None if args.quick else RESULTS,
                )
            except Exception as exc:
                results["large"] = {"error": repr(exc)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["duration_s"] = time.perf_counter() - started
    scratch = args.quick or partial  # a smoke test or a part: not the published latest.*
    output_dir = args.output_dir or (REPO / ".bench-work" if scratch else RESULTS)
    output_dir.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "partial" if partial else "latest"
    (output_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report.markdown(results)
    (output_dir / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
