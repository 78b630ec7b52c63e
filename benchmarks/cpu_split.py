"""Where a round's CPU goes: per process, and kernel against hashing against Python.

    python -m benchmarks.cpu_split --params 1000000 --nodes 2 --rounds 60

On two cores a round is as fast as the CPU it needs (both cores are busy most of it),
so this adds up, over the timed rounds of the round benchmark's federation:

- the CPU seconds of each process (researcher, upload server, broker, node daemons, job
  workers; from ``/proc``, all threads, user + system);
- with ``perf`` installed and allowed to sample the whole machine (root, or
  ``perf_event_paranoid`` <= 0), how the busy CPU divides between the kernel
  (syscalls, page cache, loopback TCP, ``sendfile``), OpenSSL's SHA-256 (the only
  ``libcrypto`` work on a plain-HTTP round), the Python interpreter, numpy and the rest,
  from ``perf record -a`` samples of every process at once (idle time left out).

``profile_round`` says which Python functions cost the most; this says how much of the
cost Python is at all, which bounds what tuning Python code can win. Prints the tables
and writes them to ``benchmarks/results/cpu-split-<params>-<nodes>.md``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.fedward_rounds import bench_federation, measure_cell, node_names
from benchmarks.profile_round import publish, scratch_folder, stop_all

#: ``perf report --sort comm,dso`` shared objects, by what they do on a round's path.
KINDS = (
    ("kernel", ("[kernel.kallsyms]", "[kernel]", "[vdso]")),
    ("SHA-256 (OpenSSL)", ("libcrypto",)),
    ("Python interpreter", ("libpython", "python3")),
    ("numpy", ("_multiarray_umath", "_multiarray", "numpy")),
)
#: The idle loop's command: its samples are the CPU nobody used.
IDLE_COMM = "swapper"
#: The sampler itself: neither fedward's work nor idle.
PERF_COMM = "perf"


#: Kernel entry points whose inclusive share says what the kernel's time was for.
ENTRY = re.compile(
    r"\[k\] (__x64_sys_\w+|__do_sys_\w+|ksys_\w+|asm_exc_page_fault|handle_softirqs)$"
)


@dataclass(frozen=True)
class Split:
    busy: dict[str, float]  # kind -> share of the busy samples
    idle_share: float  # idle samples / all samples


def split_samples(report: str) -> Split:
    """Shares by kind from the text of ``perf report --sort comm,dso --stdio``
    (lines such as ``  19.67%  python  libcrypto.so.3``)."""
    busy: Counter[str] = Counter()
    idle = 0.0
    for line in report.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].endswith("%"):
            continue
        try:
            share = float(fields[0].rstrip("%"))
        except ValueError:
            continue
        comm, dso = fields[1], " ".join(fields[2:])
        if comm == IDLE_COMM:
            idle += share
            continue
        if comm == PERF_COMM:
            continue
        kind = next((k for k, marks in KINDS if any(m in dso for m in marks)), "other")
        busy[kind] += share
    total = sum(busy.values())
    shares = {kind: value / total for kind, value in busy.most_common()} if total else {}
    return Split(shares, idle / 100.0)


def kernel_entries(report: str, top: int = 12) -> list[tuple[str, float]]:
    """The kernel entry points (system calls, page faults, soft interrupts) with the
    largest inclusive share, from ``perf report --children --sort sym --stdio`` of a
    call-graph recording: what the kernel's share of a round was spent doing."""
    found: list[tuple[str, float]] = []
    for line in report.splitlines():
        fields = line.split()
        match = ENTRY.search(line.rstrip())
        if match and fields and fields[0].endswith("%"):
            found.append((match.group(1), float(fields[0].rstrip("%"))))
    return sorted(found, key=lambda item: -item[1])[:top]


def _kind_of(process: psutil.Process, me: int) -> str:
    if process.pid == me:
        return "researcher (+ harness)"
    command = " ".join(process.cmdline())
    if "mosquitto" in command:
        return "broker"
    if "uploads serve" in command:
        return "upload server"
    if "jobs.worker" in command or "worker" in process.name():
        return "job workers"
    if " node start" in command:
        return "node daemons"
    return process.name()


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) for this process and all its descendants."""
    me = psutil.Process()
    found: dict[int, tuple[str, float]] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            if process.name() == PERF_COMM:
                continue
            times = process.cpu_times()
            found[process.pid] = (_kind_of(process, me.pid), times.user + times.system)
        except psutil.Error:  # ended meanwhile
            continue
    return found


def cpu_spent(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> Counter[str]:
    spent: Counter[str] = Counter()
    for pid, (kind, seconds) in after.items():
        spent[kind] += seconds - before.get(pid, (kind, 0.0))[1]
    return spent


def _perf() -> str | None:
    found = shutil.which("perf")
    if found is None:
        return None
    probe = subprocess.run(
        [found, "record", "-a", "-o", "/dev/null", "true"], capture_output=True, check=False
    )
    return found if probe.returncode == 0 else None


def _perf_report(perf: str, samples: Path, *options: str) -> str:
    """``perf report`` as text, call chains folded away (``-g none``)."""
    command = [perf, "report", "-i", str(samples), "-g", "none", "--stdio", *options]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _syscall_table(perf: str, samples: Path, split: Split) -> list[str]:
    report = _perf_report(perf, samples, "--children", "--sort", "sym")
    busy = 1.0 - split.idle_share
    lines = [
        "",
        "The kernel's time by entry point (inclusive, of the busy CPU; they overlap where "
        "one runs inside another, e.g. soft interrupts inside a system call):",
        "",
        "| entry point | share of busy CPU |",
        "|---|---:|",
    ]
    for name, share in kernel_entries(report):
        lines.append(f"| `{name}` | {share / busy:.0f} % |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_split")
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-perf", action="store_true", help="per-process CPU only")
    parser.add_argument(
        "--syscalls",
        action="store_true",
        help="record call graphs too, and list the kernel's time by system call",
    )
    args = parser.parse_args(argv)
    if args.params < 1 or args.nodes < 1 or args.rounds < 1:
        parser.error("--params, --nodes and --rounds must be at least 1")
    perf = None if args.no_perf else _perf()
    workdir = scratch_folder("cpu-split-")
    samples = workdir / "perf.data"
    recorder: list[subprocess.Popen[bytes]] = []
    snapshots: dict[str, dict[int, tuple[str, float]]] = {}
    try:
        with bench_federation(workdir / "fed", args.nodes) as fed:

            def around_round(index: int, starting: bool) -> None:
                if starting and index == 1:  # after the warm-up round
                    snapshots["before"] = cpu_by_process()
                    if perf is not None:
                        command = [perf, "record", "-a", "-q", "-o", str(samples)]
                        command += ["-g"] if args.syscalls else []
                        recorder.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))
                elif not starting and index == args.rounds:
                    snapshots["after"] = cpu_by_process()
                    for process in recorder:
                        process.send_signal(signal.SIGINT)
                        process.wait(timeout=60)

            cell = measure_cell(
                fed, node_names(args.nodes), args.params, args.rounds, around_round=around_round
            )
        spent = cpu_spent(snapshots["before"], snapshots["after"])
        wall = sum(sample.wall_s for sample in cell.rounds)
        overhead = cell.to_json()["overhead_s"]
        per_round = {kind: 1000 * seconds / args.rounds for kind, seconds in spent.items()}
        total = sum(per_round.values())
        lines = [
            f"# CPU of a round: {args.params / 1e6:g}M parameters x {args.nodes} nodes, "
            f"{args.rounds} timed rounds",
            "",
            f"Round overhead median {overhead['median']:.3f} s (min {overhead['min']:.3f}); "
            f"{1000 * wall / args.rounds:.1f} ms wall a round; {psutil.cpu_count()} CPUs.",
            "The researcher's figure includes the harness's work between rounds (deleting "
            "the round's parameter files from the upload server).",
            "",
            "| process | CPU ms / round | share |",
            "|---|---:|---:|",
        ]
        for kind, ms in sorted(per_round.items(), key=lambda item: -item[1]):
            lines.append(f"| {kind} | {ms:.1f} | {100 * ms / total:.0f} % |")
        lines.append(f"| all | {total:.1f} | 100 % |")
        if perf is None:
            lines += ["", "No kernel/hashing/Python split: `perf` is missing or not allowed."]
        else:
            report = _perf_report(perf, samples, "--no-children", "--sort", "comm,dso")
            split = split_samples(report)
            lines += [
                "",
                f"Whole machine (`perf record -a`), idle {100 * split.idle_share:.0f} % of "
                "the samples; the busy rest, and what it stands for per round:",
                "",
                "| runs in | share of busy CPU | ~ CPU ms / round |",
                "|---|---:|---:|",
            ]
            for kind, share in split.busy.items():
                lines.append(f"| {kind} | {100 * share:.0f} % | {share * total:.1f} |")
            if args.syscalls:
                lines += _syscall_table(perf, samples, split)
        publish("\n".join(lines) + "\n", f"cpu-split-{args.params}-{args.nodes}.md")
    finally:
        stop_all(recorder)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
