"""Scale: one round with many nodes (50 by default) on this machine, and who pays for it.

Every node is a real ``fedward node start`` process (with its warm job worker), so on a
2-core machine the round measures the platform's CPU per node as much as its latency.
The CPU time the broker, the upload server, the node processes (with their workers)
and the researcher spend during the timed round is read with psutil, and the two
services are also sampled every 100 ms for their peak CPU.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.fedward_rounds import bench_federation, measure_cell, node_names
from fedward.demo.local_federation import LocalFederation


def _tree_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its living children."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class CpuSampler:
    """Peak CPU percent of some processes, sampled on a thread every ``interval_s``."""

    def __init__(self, processes: dict[str, psutil.Process], interval_s: float = 0.1) -> None:
        self._processes = processes
        self._interval_s = interval_s
        self.peak: dict[str, float] = dict.fromkeys(processes, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for process in self._processes.values():
            process.cpu_percent(None)
        while not self._stop.wait(self._interval_s):
            for name, process in self._processes.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], process.cpu_percent(None))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _service_processes(fed: LocalFederation) -> dict[str, psutil.Process]:
    processes: dict[str, psutil.Process] = {}
    broker_pid = getattr(fed.broker, "pid", None)
    if broker_pid is not None:  # Mosquitto; the embedded broker runs in this process
        processes["broker"] = psutil.Process(broker_pid)
    if fed.uploads_process is not None:
        processes["upload_server"] = psutil.Process(fed.uploads_process.pid)
    return processes


def measure_scale(workdir: Path, node_count: int, num_params: int) -> dict[str, Any]:
    started = time.perf_counter()
    with bench_federation(workdir, node_count) as fed:
        online_s = time.perf_counter() - started
        services = _service_processes(fed)
        nodes = [psutil.Process(n.process.pid) for n in fed.nodes.values() if n.process]
        me = psutil.Process()
        marks: dict[str, Any] = {}
        sampler = CpuSampler(services)

        def around_round(index: int, starting: bool) -> None:
            if index != 1:  # round 0 is the warm-up that starts every node's job worker
                return
            if starting:
                marks["services"] = {name: _tree_cpu_s(p) for name, p in services.items()}
                marks["nodes"] = sum(_tree_cpu_s(p) for p in nodes)
                marks["me"] = sum(me.cpu_times()[:2])
                marks["machine"] = psutil.cpu_times()
                sampler.start()
            else:
                sampler.stop()
                marks["cpu_s"] = {
                    name: _tree_cpu_s(p) - marks["services"][name] for name, p in services.items()
                }
                marks["cpu_s"]["nodes_and_workers"] = (
                    sum(_tree_cpu_s(p) for p in nodes) - marks["nodes"]
                )
                marks["cpu_s"]["researcher"] = sum(me.cpu_times()[:2]) - marks["me"]
                after = psutil.cpu_times()
                marks["busy_s"] = (after.user + after.system) - (
                    marks["machine"].user + marks["machine"].system
                )

        cell = measure_cell(
            fed, node_names(node_count), num_params, rounds=1, around_round=around_round
        )
        sample = cell.rounds[0]
        wall_s = sample.wall_s
        cpu_s: dict[str, float] = marks["cpu_s"]
        busy = float(marks["busy_s"])
        return {
            "nodes": node_count,
            "num_params": num_params,
            "nodes_online_s": online_s,
            "broker": "mosquitto" if "broker" in services else "embedded (in the researcher)",
            "round_wall_s": wall_s,
            "round_overhead_s": sample.overhead_s,
            "replies": sample.replies,
            "cpu_s": cpu_s,
            "cpu_percent_of_one_core": {name: 100 * s / wall_s for name, s in cpu_s.items()},
            "peak_cpu_percent": sampler.peak,
            "machine_busy_percent": 100 * busy / (wall_s * (psutil.cpu_count() or 1)),
        }
