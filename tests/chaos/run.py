"""``make chaos``: every chaos scenario at full size, then the table.

    python -m tests.chaos.run [SCENARIO ...]

Each scenario runs in a fresh folder with its own federation (see ``scenarios``); a
scenario that raises is a row that says so. The table is printed and written to
``benchmarks/results/chaos.md``. Needs root (the disk-full scenario mounts tmpfs).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.chaos import scenarios
from tests.chaos.scenarios import Row

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "chaos.md"
SCENARIOS: dict[str, Callable[[Path], Row]] = {
    "broker_killed": scenarios.broker_killed,
    "duplicated_and_reordered": scenarios.duplicated_and_reordered,
    "node_killed_each_round": scenarios.node_killed_each_round,
    "uploads_killed": scenarios.uploads_killed,
    "disk_full": scenarios.disk_full,
    "researcher_killed": scenarios.researcher_killed,
}


def table(rows: list[tuple[Row, float]]) -> str:
    lines = [
        "| scenario | expected | observed | verdict | s |",
        "|---|---|---|---|---:|",
    ]
    for row, seconds in rows:
        verdict = row.verdict + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.scenario} | {row.expected} | {row.observed} | {verdict} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main(names: list[str]) -> int:
    logging.basicConfig(level=logging.ERROR)
    chosen = names or list(SCENARIOS)
    rows: list[tuple[Row, float]] = []
    for name in chosen:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"fedward-chaos-{name}-") as workdir:
            try:
                row = SCENARIOS[name](Path(workdir))
            except Exception as exc:
                traceback.print_exc()
                row = Row(name, "-", f"raised {type(exc).__name__}: {exc}"[:300], False)
        rows.append((row, time.monotonic() - started))
        print(f"{name}: {row.verdict} ({rows[-1][1]:.0f} s): {row.observed}", flush=True)
    text = table(rows)
    print()
    print(text)
    if not names:
        RESULTS.write_text(
            "# Chaos: experiments under injected faults\n\n"
            "`make chaos` (`python -m tests.chaos.run`): real federations on loopback "
            "(Mosquitto, the upload server, node processes) with a fault-injecting proxy "
            "(`tests/chaos/proxy.py`) between every client and the broker and upload server.\n\n"
            + text
            + "\n"
        )
        print(f"\nwrote {RESULTS}")
    return 0 if all(row.ok for row, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
