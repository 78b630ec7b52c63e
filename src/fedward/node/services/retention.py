"""Job folders the node no longer needs, and deleting them (``fedward node gc``).

An experiment's job folder (``jobs/<experiment>/``, see ``node.jobs.job_folder``) holds
the canonical plan, the inputs of the job in progress and the worker's scratch space.
A job removes its own parameter files when it ends; what stays is small but stays for
good, and a daemon killed mid-job leaves its inputs and results behind. So a folder is
deleted once its experiment had no job for ``keep_s``:

- its last activity is the newest modification time of the folder and of its
  ``inputs``, ``work`` and ``outputs`` (every job adds and removes files there);
- an experiment with a job still running in the job log is never touched, however
  long the job has run; nor is a folder that is not an experiment's (a stray name).

A warm worker keeps an experiment's folder between rounds; it is stopped after
``[jobs] idle_worker_s``, far shorter than the retention, so a folder is not deleted
under a worker that may still use it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from fedward.config.model import NodeConfig
from fedward.core.ids import ID_PATTERN
from fedward.node.jobs.job_folder import JobFolder
from fedward.node.services.factory import open_node_services_for
from fedward.node.services.jobs import JobService
from fedward.periodic import PeriodicTask

log = logging.getLogger("fedward.node")

_PARTS = ("", "inputs", "work", "outputs")
RECENT_JOBS = 10_000  # the job log rows looked at for jobs still running


@dataclass(frozen=True)
class CollectedFolders:
    folders: int
    bytes: int
    kept: int


def last_activity(folder: Path) -> float:
    """The newest modification time of a job folder and its three parts (0: none)."""
    newest = 0.0
    for part in _PARTS:
        try:
            newest = max(newest, (folder / part).stat(follow_symlinks=False).st_mtime)
        except OSError:
            continue
    return newest


def folder_bytes(folder: Path) -> int:
    """Disk blocks used under ``folder``, links not followed."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                total += Path(root, name).lstat().st_blocks * 512
            except OSError:
                continue
    return total


def running_experiments(jobs: JobService) -> set[str]:
    return {job.experiment_id for job in jobs.list(RECENT_JOBS) if job.outcome == "running"}


def collect_job_folders(
    jobs_dir: Path,
    keep_s: float,
    busy: Collection[str] = (),
    now: float | None = None,
    *,
    dry_run: bool = False,
) -> CollectedFolders:
    """Delete (with ``dry_run`` only count) the job folders idle for ``keep_s``, except
    those of the ``busy`` experiments."""
    now = time.time() if now is None else now
    deleted = freed = kept = 0
    try:
        entries = sorted(jobs_dir.iterdir())
    except FileNotFoundError:
        return CollectedFolders(0, 0, 0)
    for folder in entries:
        name = folder.name
        if not ID_PATTERN.fullmatch(name) or folder.is_symlink() or not folder.is_dir():
            continue
        if name in busy or now - last_activity(folder) < keep_s:
            kept += 1
            continue
        size = folder_bytes(folder)
        if not dry_run:
            JobFolder(folder).remove()
            log.info("deleted job folder of experiment %s (%d bytes)", name, size)
        deleted, freed = deleted + 1, freed + size
    return CollectedFolders(deleted, freed, kept)


class JobFolderCollector(PeriodicTask):
    """``collect_job_folders`` every ``interval_s`` on a thread of the node daemon."""

    def __init__(
        self,
        jobs_dir: Path,
        keep_s: float,
        interval_s: float,
        busy: Callable[[], Collection[str]],
    ) -> None:
        super().__init__(
            "job-folders-gc",
            interval_s,
            lambda: collect_job_folders(jobs_dir, keep_s, busy()),
        )


def start_job_folder_collector(config: NodeConfig) -> JobFolderCollector | None:
    """The node's background collector, as ``[retention]`` says (None: switched off)."""
    retention = config.retention
    if not retention.collect_every_s:
        return None
    jobs = open_node_services_for(config).jobs
    return JobFolderCollector(
        config.jobs_dir,
        retention.keep_job_folders_h * 3600,
        retention.collect_every_s,
        lambda: running_experiments(jobs),
    ).start()
