"""WAN realism: rounds through the WireGuard lab with every site's link shaped, per codec.

    python -m benchmarks.wan            # the section of make bench (root; a few minutes)
    python -m benchmarks.wan --full     # adds 25M x 5 (about 10 more minutes)

``fedward lab`` puts the researcher, the nodes, the broker and the upload server in their
own network namespaces, joined only by WireGuard (``wireguard-go``, userspace). The
researcher's and each node's link is shaped to 50 and 200 Mbit/s both ways
(``benchmarks.wan_links``: ``tc tbf``; no delay, this kernel has no netem); the broker
and the upload server sit in the "data centre", unshaped. ``benchmarks.wan_round`` runs,
in the researcher's namespace, one warm-up round (unshaped) and one timed round per rate
of ``WanPlan`` (noise as its update) for each codec, reading every site's byte
counters around each round.

Floors, from the bytes measured on the links (WireGuard and TCP included), at the rate:
- link floor: the busiest direction of any site's link (the most a perfect pipeline
  could do);
- store-and-forward floor: the researcher's upload, then a node's download, its upload,
  then the researcher's downloads, one after the other, as the upload server relays them.

Accuracy per codec (digits, breast cancer) comes from ``benchmarks.wan_accuracy``.
Results: ``benchmarks/results/wan.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.wan_accuracy import measure_accuracy
from benchmarks.wan_links import Site, Sites, shape
from benchmarks.wan_report import markdown

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
M = 1_000_000
CODECS = ("none", "float16", "int8")
RATES = (50.0, 200.0)
CELLS = ((1 * M, 2), (1 * M, 5), (25 * M, 2))
FULL_CELLS = (*CELLS, (25 * M, 5))


def _start_nodes(state: Any, count: int) -> None:
    from fedward.lab.deploy import spawn_recorded
    from fedward.lab.netns import fedward_command, run_in
    from fedward.lab.run import site_env

    for component in state.topology.node_names[:count]:
        env = {**site_env(state, component), "ENABLE_TRAINING_PLAN_APPROVAL": "false"}
        data = Path(env["FEDWARD_DATA_ROOT"]) / "bench.csv"
        data.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data.write_text("x,y\n0.5,0\n1.5,1\n2.5,0\n")
        add = ["node", "dataset", "add", "--type", "csv", "--path", str(data)]
        add += ["--name", "bench", "--tags", "wan-bench"]
        namespace = state.topology.namespace(component)
        run_in(namespace, fedward_command(*add), env=env)
        spawn_recorded(state, f"node-{component}", component, fedward_command("node", "start"), env)


def _sites(state: Any, count: int) -> Sites:
    topology = state.topology
    names = ["researcher", *topology.node_names[:count]]
    internet = topology.internet_namespace
    return Sites(
        tuple(
            Site(name, topology.namespace(name), internet, topology.bridge_port(name))
            for name in names
        )
    )


def _cell(
    state: Any, workdir: Path, params: int, nodes: int, rates: tuple[float, ...]
) -> list[dict[str, Any]]:
    from fedward.lab.netns import run_in
    from fedward.lab.run import site_env

    spec = workdir / f"sites-{nodes}.json"
    spec.write_text(json.dumps(_sites(state, nodes).to_json()))
    node_ids = ",".join(state.topology.node_names[:nodes])
    env = {**site_env(state, "researcher"), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks.wan_round", "--params", str(params),
               "--nodes", node_ids, "--codecs", ",".join(CODECS),
               "--rates", ",".join(f"{r:g}" for r in rates), "--shape-spec", str(spec)]  # fmt: skip
    print(f"wan: {params / M:g}M x {nodes} ...", file=sys.stderr, flush=True)
    output = run_in(state.topology.namespace("researcher"), command, env=env, timeout_s=3600)
    samples = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    for sample in samples:
        sample.update(params=params, nodes=nodes, **floors(sample))
    return samples


def floors(sample: dict[str, Any]) -> dict[str, float]:
    """The link and store-and-forward floors (seconds) of a round's measured bytes."""
    rate = sample["rate_mbit"] * 1e6 / 8
    moved = sample["bytes"]
    nodes = [s for s in moved if s != "researcher"]
    busiest = max(max(m["tx"], m["rx"]) for m in moved.values())
    chain = (
        moved["researcher"]["tx"]
        + max(moved[n]["rx"] for n in nodes)
        + max(moved[n]["tx"] for n in nodes)
        + moved["researcher"]["rx"]
    )
    return {"link_floor_s": busiest / rate, "relay_floor_s": chain / rate}


def run_wan(
    workdir: Path, *, full: bool = False, quick: bool = False, accuracy: bool = True
) -> dict[str, Any]:
    """The section: ``quick`` runs 1M x 2 only, ``full`` adds 25M x 5."""
    if os.geteuid() != 0:
        return {"measured": False, "reason": "needs root (network namespaces, WireGuard, tc)"}
    missing = [t for t in ("ip", "wg", "tc") if shutil.which(t) is None]
    if missing:
        return {"measured": False, "reason": f"missing tools: {', '.join(missing)}"}
    from fedward.lab.deploy import lab_down, lab_up

    cells = ((1 * M, 2),) if quick else FULL_CELLS if full else CELLS
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"measured": True, "codecs": list(CODECS), "rates_mbit": list(RATES)}
    lab_dir = workdir / "wan-lab"
    started = time.perf_counter()
    try:
        state = lab_up(lab_dir, max(n for _, n in cells))
        _start_nodes(state, max(n for _, n in cells))
        shape(_sites(state, max(n for _, n in cells)), None)
        results["rounds"] = [
            sample
            for params, nodes in cells
            for sample in _cell(state, workdir, params, nodes, RATES)
        ]
    except Exception as exc:  # recorded, as every section's failure
        results["error"] = repr(exc)
    finally:
        problems = lab_down(lab_dir)
        if problems:
            print(f"lab down warnings: {problems}", file=sys.stderr)
    results["lab_s"] = time.perf_counter() - started
    if accuracy:
        print("wan: accuracy per codec (loopback) ...", file=sys.stderr, flush=True)
        try:
            results["accuracy"] = measure_accuracy(workdir / "accuracy", CODECS)
        except Exception as exc:
            results["accuracy"] = {"error": repr(exc)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wan", description=__doc__)
    parser.add_argument("--full", action="store_true", help="also 25M x 5")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    (REPO / ".bench-work").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / ".bench-work", prefix="wan-") as scratch:
        results = run_wan(Path(scratch), full=args.full, accuracy=not args.no_accuracy)
    write_results(results, args.output_dir)
    return 0 if results.get("measured") and "error" not in results else 1


def write_results(results: dict[str, Any], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "wan.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (output_dir / "wan.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
