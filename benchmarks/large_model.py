"""A 1 GB model round: how much memory each fedward process needs for it.

One 2-node loopback federation (``fedward.demo.local_federation.LocalFederation``, as
``benchmarks.fedward_rounds``) runs ``NoOpPlan`` twice: first a 1M-parameter model
(4 MB: the small reference), then a 250M-parameter one (1 GB of float32 in dense
layers), each as one warm-up round and one timed round. A thread samples, every 50 ms,
the resident set (RSS, and its anonymous part: RSS minus file-backed and shared pages)
of:

- the researcher (this process: ``Experiment.run_once``, its uploads, downloads,
  FedAvg and checkpoint);
- each node daemon (``fedward node start``), and its job worker(s) (its children),
  apart and summed at each sample;
- the upload server process.

Targets (issue 13): researcher and node peak <= 3x the model's size, and the upload
server's peak independent of the blob size (the same for the 4 MB and the 1 GB round).
Memory already held before a model's rounds (the interpreter, imports) is reported as
the baseline, and the peaks are compared with the model both with and without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.fedward_rounds import bench_federation, measure_cell, node_names
from fedward.demo.local_federation import LocalFederation

LARGE_PARAMS = 250_000_000
SMALL_PARAMS = 1_000_000
RSS_TARGET = 3.0
SAMPLE_S = 0.05


def _kernel_peak(pid: int) -> int:
    """The kernel's own high-water mark of the resident set (VmHWM), in bytes: exact,
    where 50 ms samples could miss a short spike. 0 where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_kernel_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS ("5" to clear_refs, Linux >= 4.0; needs the
    process's owner or root): each model's peak is then its own, not the process's."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _memory(process: psutil.Process) -> tuple[int, int]:
    """(RSS, anonymous RSS) in bytes: RSS less file-backed/shared pages, e.g. an mmap of
    a safetensors file, which the kernel can drop without swapping."""
    info = process.memory_info()
    return info.rss, info.rss - getattr(info, "shared", 0)


class RssSampler:
    """Peak RSS of named process groups, sampled together every ``SAMPLE_S`` seconds."""

    def __init__(self, fed: LocalFederation, node_ids: list[str]) -> None:
        self._me = psutil.Process()
        self._uploads = psutil.Process(fed.uploads_process.pid) if fed.uploads_process else None
        self._daemons = {
            n: psutil.Process(fed.nodes[n].process.pid)  # type: ignore[union-attr]
            for n in node_ids
        }
        self.peak: dict[str, int] = {}
        self.peak_anon: dict[str, int] = {}
        self.kernel_peak: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _record(self, name: str, rss: int, anon: int) -> None:
        self.peak[name] = max(self.peak.get(name, 0), rss)
        self.peak_anon[name] = max(self.peak_anon.get(name, 0), anon)

    def _named(self) -> list[tuple[str, list[psutil.Process]]]:
        named: list[tuple[str, list[psutil.Process]]] = [("researcher", [self._me])]
        if self._uploads is not None:
            named.append(("upload_server", [self._uploads]))
        for node_id, daemon in self._daemons.items():
            try:
                workers = daemon.children(recursive=True)
            except psutil.Error:
                workers = []
            named += [
                (f"{node_id} daemon", [daemon]),
                (f"{node_id} worker", workers),
                (f"{node_id} daemon+worker", [daemon, *workers]),
            ]
        return named

    def reset_kernel_peaks(self) -> None:
        for _name, processes in self._named():
            for process in processes:
                _reset_kernel_peak(process.pid)

    def sample(self) -> None:
        for name, processes in self._named():
            rss = anon = hwm = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    p_rss, p_anon = _memory(process)
                    rss, anon = rss + p_rss, anon + p_anon
                    hwm += _kernel_peak(process.pid)  # a sum of peaks: an upper bound
            self._record(name, rss, anon)
            self.kernel_peak[name] = max(self.kernel_peak.get(name, 0), hwm)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _one_model(fed: LocalFederation, nodes: list[str], num_params: int) -> dict[str, Any]:
    baseline = RssSampler(fed, nodes)
    baseline.reset_kernel_peaks()
    baseline.sample()  # before this model's experiment: what the processes hold anyway
    started = time.perf_counter()
    with RssSampler(fed, nodes) as sampler:
        cell = measure_cell(fed, nodes, num_params, rounds=1, round_timeout_s=1200.0)
    return {
        "num_params": num_params,
        "model_bytes": num_params * 4,
        "wall_s": time.perf_counter() - started,
        "round_wall_s": cell.rounds[0].wall_s,
        "warmup_wall_s": cell.warmup.wall_s,
        "replies": cell.rounds[0].replies,
        "samples": sampler.samples,
        "baseline_rss": baseline.peak,
        "peak_rss": sampler.peak,
        "peak_anon_rss": sampler.peak_anon,
        "kernel_peak_rss": sampler.kernel_peak,
    }


def measure_large(
    workdir: Path, num_params: int = LARGE_PARAMS, write_to: Path | None = None
) -> dict[str, Any]:
    """The small and the large model's rounds on one 2-node federation; the figures, also
    written to ``write_to/large.{json,md}`` when given."""
    nodes = node_names(2)
    with bench_federation(workdir, 2) as fed:
        small = _one_model(fed, nodes, SMALL_PARAMS)
        print(f"large model: {num_params / 1e6:g}M parameters ...", file=sys.stderr, flush=True)
        large = _one_model(fed, nodes, num_params)
    result = {"small": small, "large": large, "target_ratio": RSS_TARGET}
    if write_to is not None:
        write_to.mkdir(parents=True, exist_ok=True)
        (write_to / "large.json").write_text(json.dumps(result, indent=2) + "\n")
        (write_to / "large.md").write_text(markdown(result))
    return result


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


def table(result: dict[str, Any]) -> str:
    if "large" not in result:
        return f"not measured: {result.get('error', 'no result')}"
    small, large = result["small"], result["large"]
    model = large["model_bytes"]
    lines = [
        f"{large['num_params'] / 1e6:g}M float32 parameters ({_mb(model)} MB) x 2 nodes: "
        f"warm-up round {large['warmup_wall_s']:.1f} s, timed round "
        f"{large['round_wall_s']:.1f} s ({large['replies']} replies); RSS sampled every "
        f"{SAMPLE_S * 1000:.0f} ms ({large['samples']} samples). Reference: "
        f"{small['num_params'] / 1e6:g}M ({_mb(small['model_bytes'])} MB) on the same "
        "federation just before.",
        "",
        "| process | baseline RSS MB | peak RSS MB, 4 MB model | sampled peak RSS MB, large model "
        "| anonymous peak MB | kernel peak (VmHWM) MB | peak / model "
        "| (peak - baseline) / model | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sampled in large["peak_rss"].items():
        # The kernel's high-water mark is exact for one process; for daemon+worker it is
        # a sum of two peaks that need not coincide, so the samples are used there.
        kernel = large.get("kernel_peak_rss", {}).get(name, 0)
        peak = sampled if "+" in name else max(sampled, kernel)
        base = large["baseline_rss"].get(name, 0)
        ratio = peak / model
        growth = (peak - base) / model
        if name.endswith((" worker", " daemon")):
            target = "-"  # the target is on the node as a whole: daemon+worker
        elif name == "upload_server":
            small_peak = max(
                small["peak_rss"].get(name, 0), small.get("kernel_peak_rss", {}).get(name, 0)
            )
            same = peak - small_peak < 64e6  # within 64 MB of the 4 MB round's
            target = f"independent of blob size: {'met' if same else '**missed**'}"
        else:
            target = f"<= {RSS_TARGET:g}x: {'met' if ratio <= RSS_TARGET else '**missed**'}"
        lines.append(
            f"| {name} | {_mb(base)} | {_mb(small['peak_rss'].get(name, 0))} | {_mb(sampled)} "
            f"| {_mb(large['peak_anon_rss'].get(name, 0))} | {_mb(kernel)} | {ratio:.2f}x "
            f"| {growth:.2f}x | {target} |"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            "# Large model: memory of a 1 GB round",
            "",
            "`python -m benchmarks.run --only large` (benchmarks/large_model.py); "
            "how to read it: docs/benchmarks.md.",
            "",
            table(result),
            "",
        ]
    )


def measure_large_in_child(
    workdir: Path, num_params: int = LARGE_PARAMS, write_to: Path | None = None
) -> dict[str, Any]:
    """``measure_large`` in a fresh interpreter: the researcher's RSS is then a
    researcher's, not that of a harness that ran every other section before."""
    out = workdir / "large-result.json"
    command = [sys.executable, "-m", "benchmarks.large_model", str(workdir), str(num_params)]
    if write_to is not None:
        command.append(str(write_to))
    subprocess.run(command, check=True, env={**os.environ, "LARGE_RESULT": str(out)})
    result: dict[str, Any] = json.loads(out.read_text())
    return result


if __name__ == "__main__":
    _result = measure_large(
        Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None
    )
    Path(os.environ["LARGE_RESULT"]).write_text(json.dumps(_result))
