"""Disk used by the upload server over a 20-round 25M x 5 experiment, default retention.

    python -m benchmarks.retention [--params 25000000] [--nodes 5] [--rounds 20]

A real federation (``LocalFederation``: Mosquitto, ``fedward uploads serve`` with its
default retention, five node processes) runs ``NoOpPlan`` for ``--rounds`` rounds.
The bytes under the server's ``objects/`` are sampled every 0.2 s and at every round's
end; after the last round the harness waits for the retention to pass and samples
again. A round's worth is the global parameters plus one update per node. Target: at
most 3 rounds' worth on the server. Writes ``benchmarks/results/retention.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.fedward_rounds import TAGS, bench_federation, node_names
from benchmarks.noop_plan import NoOpPlan
from fedward.researcher import Experiment
from fedward.researcher.aggregators import FedAvg
from fedward.uploads.retention import DEFAULT_INTERVAL_S, DEFAULT_KEEP_FETCHED_S

RESULTS = Path(__file__).resolve().parent / "results" / "retention.md"
TARGET_ROUNDS = 3.0


def stored_bytes(objects: Path) -> int:
    total = 0
    for path in objects.glob("*/*"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total


class DiskSampler:
    """The largest size seen under ``objects`` while it runs."""

    def __init__(self, objects: Path, every_s: float = 0.2) -> None:
        self.objects = objects
        self.peak = 0
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self.peak = max(self.peak, stored_bytes(self.objects))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=25_000_000)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    model_bytes = options.params * 4
    round_bytes = model_bytes * (1 + options.nodes)
    with (
        tempfile.TemporaryDirectory(prefix="fedward-retention-", dir=".") as workdir,
        bench_federation(Path(workdir), options.nodes) as fed,
    ):
        objects = fed.workdir / "uploads" / "data" / "objects"
        at_round_end: list[int] = []
        experiment = Experiment(
            tags=TAGS,
            training_plan=NoOpPlan,
            model_args={"num_params": options.params},
            rounds=options.rounds,
            aggregator=FedAvg(),
            nodes=node_names(options.nodes),
            min_replies=options.nodes,
            round_timeout_s=600,
            federation=fed.researcher(),
            progress=False,
            keep_checkpoints=2,
            on_round=lambda record: at_round_end.append(stored_bytes(objects)),
        )
        started = time.monotonic()
        with DiskSampler(objects) as sampler:
            experiment.run()
            elapsed = time.monotonic() - started
            at_end = stored_bytes(objects)
            time.sleep(DEFAULT_KEEP_FETCHED_S + 2 * DEFAULT_INTERVAL_S)
            settled = stored_bytes(objects)
        peak = sampler.peak
    worst_round_end = max(at_round_end)
    rows = [
        ("peak during the experiment (0.2 s samples)", peak),
        ("largest at a round's end", worst_round_end),
        ("right after the last round", at_end),
        (f"{DEFAULT_KEEP_FETCHED_S + 2 * DEFAULT_INTERVAL_S:g} s later", settled),
    ]
    lines = [
        "# Upload server disk use with the default retention",
        "",
        f"`python -m benchmarks.retention`: {options.rounds} rounds of a "
        f"{options.params / 1e6:g}M-parameter model (NoOpPlan, float32) on {options.nodes} "
        f"nodes, `fedward uploads serve` with its defaults (parameters deleted "
        f"{DEFAULT_KEEP_FETCHED_S:g} s after every reader confirmed it kept them, checked every "
        f"{DEFAULT_INTERVAL_S:g} s). A round's worth = global parameters + {options.nodes} "
        f"updates = {round_bytes / 1e6:.0f} MB. {options.rounds} rounds without retention: "
        f"{options.rounds * round_bytes / 1e9:.1f} GB. Run took {elapsed:.0f} s "
        f"({elapsed / options.rounds:.1f} s a round). Target: at most "
        f"{TARGET_ROUNDS:g} rounds' worth on the server.",
        "",
        "| when | stored MB | rounds' worth |",
        "|---|---:|---:|",
    ]
    for label, size in rows:
        lines.append(f"| {label} | {size / 1e6:.0f} | {size / round_bytes:.2f} |")
    verdict = "within" if peak <= TARGET_ROUNDS * round_bytes else "OVER"
    lines += ["", f"Peak {peak / round_bytes:.2f} rounds' worth: {verdict} the target.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if peak <= TARGET_ROUNDS * round_bytes else 1


if __name__ == "__main__":
    sys.exit(main())
