"""The CPU thread budget of one job worker (``[jobs] threads``).

Left alone, torch's intra-op pool, OpenMP and every BLAS library each start one thread
per CPU of the machine, in every worker: ``max_parallel`` jobs (and other nodes on the
same host) then run many times more arithmetic threads than there are cores, and CPU
rounds crawl. The node therefore gives each worker a share: the configured number, or by
default the CPUs this node may use divided by ``max_parallel``, at least 1.

"The CPUs this node may use" honours what the host restricts: the affinity mask (which
cpusets and ``taskset`` set) and a cgroup CPU quota (v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, as a container's ``--cpus`` sets), the
tightest of the node's group and its ancestors. The budget travels to the worker as the
variables the libraries read when they start (``environment``), and the worker also sets
torch's pool itself (``worker``), for a plan that imported torch after changing them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedward.config.model import JobLimits, max_job_threads
from fedward.node.jobs.cgroups import CGROUP_ROOT

# What the libraries a plan uses read for their pool sizes: OpenMP (and torch's intra-op
# pool, which reads OMP_NUM_THREADS and MKL_NUM_THREADS when it starts), MKL, OpenBLAS
# and numexpr. Set in every worker, overriding the node's own environment.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(frozen=True)
class ThreadBudget:
    """Threads per job, and where the number came from (for the operator)."""

    threads: int
    reason: str  # "set in [jobs] threads" or how the default was reached

    @classmethod
    def for_limits(cls, limits: JobLimits, cpus: int | None = None) -> ThreadBudget:
        """``[jobs] threads``, or the default for this host (``cpus``: tests pass their own)."""
        if limits.threads is not None:
            return cls(limits.threads, "set in [jobs] threads")
        cpus = usable_cpus() if cpus is None else cpus
        return cls(default_threads(cpus, limits), f"{cpus} CPUs / {limits.max_parallel} jobs")

    def describe(self) -> str:
        plural = "s" if self.threads != 1 else ""
        return f"{self.threads} thread{plural} per job ({self.reason})"

    def environment(self) -> dict[str, str]:
        return {name: str(self.threads) for name in THREAD_VARIABLES}


def default_threads(cpus: int, limits: JobLimits) -> int:
    """A fair share of ``cpus`` for each of ``max_parallel`` jobs, at least 1, and within
    what ``pids_max`` leaves room for (every thread counts against it)."""
    return max(1, min(cpus // limits.max_parallel, max_job_threads(limits.pids_max)))


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path | None = None) -> int:
    """The CPUs this process may keep busy: its affinity, bounded by any cgroup quota."""
    cpus = len(os.sched_getaffinity(0))
    quota = cpu_quota(cgroup_root, proc_cgroup or Path("/proc/self/cgroup"))
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def cpu_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The tightest CPU quota (in CPUs) over this process's cgroup and its ancestors, or
    ``None`` where there is none, or none can be read (no cgroup file system, say)."""
    try:
        lines = proc_cgroup.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    quotas: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, own = parts[1].split(","), parts[2]
        if parts[1] == "":
            quotas += _walk(cgroup_root, own, _v2_quota)
        elif "cpu" in controllers:
            base = cgroup_root / _v1_mount(cgroup_root)
            quotas += _walk(base, own, _v1_quota)
    return min(quotas, default=None)


def _v1_mount(cgroup_root: Path) -> str:
    # Distributions mount the v1 cpu controller as "cpu,cpuacct" with "cpu" linking to it.
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (cgroup_root / name).is_dir():
            return name
    return "cpu"


def _walk(base: Path, own: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas found from ``base/own`` up to ``base``; a container's cgroup namespace
    shows its own group as the root, so the walk stops there."""
    found = []
    folder = base / own.lstrip("/")
    while True:
        value = read(folder)
        if value is not None:
            found.append(value)
        if folder == base or base not in folder.parents:
            return found
        folder = folder.parent


def _v2_quota(folder: Path) -> float | None:
    """``cpu.max`` holds "QUOTA PERIOD" in microseconds, or "max PERIOD" for none."""
    try:
        quota, period = (folder / "cpu.max").read_text(encoding="ascii").split()
        return int(quota) / int(period) if quota != "max" and int(period) > 0 else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _v1_quota(folder: Path) -> float | None:
    """``cpu.cfs_quota_us`` is -1 for none."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int((folder / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return quota / period if quota > 0 and period > 0 else None
