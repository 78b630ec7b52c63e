"""The researcher's side of the WAN benchmark, run inside the lab's researcher namespace.

    python -m benchmarks.wan_round --params 25000000 --nodes node1,node2 \\
        --codecs none,float16,int8 --rates 50,200 --shape-spec spec.json

For each codec: a fresh ``Experiment`` of ``WanPlan`` (``NoOpPlan`` with noise) on the
given nodes; one warm-up
round on unshaped links (the node starts a job worker, and a codec sends the full model
once), then one timed round per rate with every site's link shaped to that rate
(``benchmarks.wan.shape``, ``tc`` on the lab's veth pairs). Around each timed round it
reads every site's interface counters: the bytes that really crossed each link,
WireGuard and TCP included. One JSON line per timed round on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.wan_links import Sites, counters, shape
from benchmarks.wan_plan import WanPlan
from fedward.config.loader import load_researcher_config
from fedward.lab.experiment import wait_for_nodes
from fedward.researcher import Experiment, FedAvg
from fedward.researcher.connect import connect

TAGS = ["wan-bench"]


def _round(experiment: Experiment, sites: Sites) -> dict[str, Any]:
    before = counters(sites)
    started = time.perf_counter()
    record = experiment.run_once()
    wall_s = time.perf_counter() - started
    after = counters(sites)
    moved = {site: {d: after[site][d] - before[site][d] for d in ("tx", "rx")} for site in before}
    ok = [record.nodes[n] for n in record.succeeded]
    if len(ok) != len(record.nodes):
        failed = {n: r.error for n, r in record.nodes.items() if r.status != "ok"}
        raise RuntimeError(f"round {record.round_index + 1} lost nodes: {failed}")
    return {
        "wall_s": wall_s,
        "compute_s": max(r.timings.get("train_s", 0.0) for r in ok),
        "bytes": moved,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", type=int, required=True)
    parser.add_argument("--nodes", required=True)
    parser.add_argument("--codecs", default="none,float16,int8")
    parser.add_argument("--rates", default="50,200", help="Mbit/s, comma-separated")
    parser.add_argument("--shape-spec", type=Path, required=True)
    args = parser.parse_args(argv)
    node_ids = args.nodes.split(",")
    sites = Sites.from_json(json.loads(args.shape_spec.read_text()))
    federation = connect(load_researcher_config())
    try:
        wait_for_nodes(federation, node_ids, timeout_s=120)
        for codec in args.codecs.split(","):
            rates = [float(r) for r in args.rates.split(",")]
            experiment = Experiment(
                tags=TAGS,
                training_plan=WanPlan,
                model_args={"num_params": args.params},
                rounds=1 + len(rates),
                aggregator=FedAvg(),
                nodes=node_ids,
                round_timeout_s=900,
                min_replies=len(node_ids),
                federation=federation,
                progress=False,
                checkpoints=False,
                update_codec=codec,
            )
            shape(sites, None)
            warm = _round(experiment, sites)
            print(f"{codec} warm-up {warm['wall_s']:.1f} s", file=sys.stderr, flush=True)
            for rate in rates:
                shape(sites, rate)
                try:
                    sample = _round(experiment, sites)
                finally:
                    shape(sites, None)
                sample.update(codec=codec, rate_mbit=rate, warmup_s=warm["wall_s"])
                print(json.dumps(sample), flush=True)
                print(f"{codec} @{rate:g} Mbit/s {sample['wall_s']:.1f} s", file=sys.stderr,
                      flush=True)  # fmt: skip
    finally:
        federation.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
