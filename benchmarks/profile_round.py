"""Where a fedward round's time goes: profiles of every process during timed rounds.

    python -m benchmarks.profile_round --params 25000000 --nodes 2 --rounds 3

Runs the round benchmark's federation and, during the timed rounds (after the warm-up),
samples the upload server, each selected node daemon and its job worker with
``py-spy`` (CPU samples, 100 Hz; needs ``py-spy`` installed, e.g. ``pip install py-spy``,
and permission to trace: root or ``ptrace_scope`` 0), and the researcher (this process)
with ``cProfile`` (wall time, waits included). Prints, per process, the functions with
the most samples (inclusive and self) and writes the same to
``benchmarks/results/profile-<params>-<nodes>.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psutil

from benchmarks.fedward_rounds import bench_federation, measure_cell, node_names

REPO = Path(__file__).resolve().parent.parent
TOP = 14


def scratch_folder(prefix: str) -> Path:
    """A new folder under ``.bench-work/`` for one profiling run (the caller removes it)."""
    (REPO / ".bench-work").mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=REPO / ".bench-work"))


def publish(text: str, name: str) -> None:
    """Print a report and write it to ``benchmarks/results/<name>``."""
    target = REPO / "benchmarks" / "results" / name
    target.write_text(text)
    print(text)
    print(f"written to {target}", file=sys.stderr)


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Kill the samplers still running (a run that failed before stopping them)."""
    for process in processes:
        if process.poll() is None:
            process.kill()


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


#: With ``--idle``, only the stacks under these functions are summarised per process
#: (the rest is threads waiting for work).
FOCUS = {"daemon": "handle_train", "worker": "Worker.run", "server": "UploadApp.__call__"}


def summarise_collapsed(path: Path, rounds: int, top: int = TOP, focus: str = "") -> str:
    """Top functions of a py-spy raw (collapsed) file, inclusive and self, with the
    milliseconds per round they stand for (100 samples a second, all threads summed)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return "(no samples)"
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";")]
        if focus and not any(f.startswith(focus + " ") for f in frames):
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "(no samples)"

    def ms(count: int) -> str:
        return f"{count * 10 / rounds:.0f}"

    lines = [
        f"{total} samples" + (f" under `{focus}`" if focus else ""),
        "",
        "| inclusive ms/round | inclusive % | self ms/round | function |",
        "|---:|---:|---:|---|",
    ]
    for frame, count in inclusive.most_common(top):
        lines.append(f"| {ms(count)} | {100 * count / total:.0f} | {ms(own[frame])} | `{frame}` |")
    lines += ["", "Most self time:", ""]
    for frame, count in own.most_common(top // 2):
        lines.append(f"- {100 * count / total:.0f}% ({ms(count)} ms/round) `{frame}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_round")
    parser.add_argument("--params", type=int, default=25_000_000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--idle",
        action="store_true",
        help="also sample waiting threads (wall time, not CPU: shows where a round waits)",
    )
    args = parser.parse_args(argv)
    py_spy = _py_spy()
    workdir = scratch_folder("profile-")
    outputs: dict[str, Path] = {}
    spies: list[subprocess.Popen[bytes]] = []
    profiler = cProfile.Profile()
    try:
        with bench_federation(workdir / "fed", args.nodes) as fed:
            targets: dict[str, int] = {}
            if fed.uploads_process is not None:
                targets["upload server"] = fed.uploads_process.pid

            def around_round(index: int, starting: bool) -> None:
                if starting and index == 1:
                    for node_id in node_names(args.nodes):
                        process = fed.nodes[node_id].process
                        if process is None:
                            continue
                        targets[f"{node_id} daemon"] = process.pid
                        for child in psutil.Process(process.pid).children(recursive=True):
                            targets[f"{node_id} job worker"] = child.pid
                    for name, pid in targets.items():
                        outputs[name] = workdir / f"{name.replace(' ', '-')}.txt"
                        command = [py_spy, "record", "-p", str(pid), "-f", "raw"]
                        command += ["--idle"] if args.idle else []
                        spies.append(
                            subprocess.Popen(
                                [*command, "--nolineno", "-o", str(outputs[name])],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                        )
                    profiler.enable()
                elif not starting and index == args.rounds:
                    profiler.disable()

            cell = measure_cell(
                fed, node_names(args.nodes), args.params, args.rounds, around_round=around_round
            )
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                spy.wait(timeout=30)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        overhead = cell.to_json()["overhead_s"]
        parts = [
            f"# Profile: {args.params / 1e6:g}M parameters x {args.nodes} nodes, "
            f"{args.rounds} timed rounds",
            "",
            f"Round overhead median {overhead['median']:.3f} s "
            f"(min {overhead['min']:.3f}, max {overhead['max']:.3f}); profilers running.",
            "",
            "## researcher (cProfile, wall time, cumulative)",
            "",
            "```",
            text.getvalue().strip(),
            "```",
        ]
        for name, path in outputs.items():
            focus = next((f for k, f in FOCUS.items() if k in name), "") if args.idle else ""
            kind = "wall-time samples, idle threads included" if args.idle else "CPU samples"
            parts += [
                "",
                f"## {name} (py-spy, {kind})",
                "",
                summarise_collapsed(path, args.rounds, focus=focus),
            ]
        report = "\n".join(parts) + "\n"
        suffix = "-idle" if args.idle else ""
        publish(report, f"profile-{args.params}-{args.nodes}{suffix}.md")
    finally:
        stop_all(spies)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
