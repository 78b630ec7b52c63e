"""The daemon side of training jobs: warm, isolated workers, one per experiment.

Starting a Python process with the ML imports costs about half a second, so a worker is
kept per (experiment, plan, dataset) and reused across rounds; it is stopped after it
sat idle for ``JobLimits.idle_worker_s``, after any failure (its memory may be in a bad
state), or when the daemon stops.

A worker is started as ``[sh joining its cgroup] [bwrap ...] python -I -m
fedward.node.jobs.worker [its own layers]`` (``isolation`` says which parts this host
has). Jobs go to it on a pipe (its stdin), reports and result files come back on a Unix
socket (its stdout). The runner treats it as hostile: it reads the worker's reports with
a size limit and a poll, never a blocking read, so a worker that stops talking, or a
child that keeps the socket open after the worker died, cannot hold a job past its
deadline; it watches the job tree's CPU time, memory events and work-folder size while
the job runs; and on any failure it kills the whole tree (bubblewrap's PID namespace,
the cgroup, the process group), so no process outlives its job.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fedward.config.model import JobLimits
from fedward.errors import (
    JobError,
)
from fedward.node.jobs import wire
from fedward.node.jobs.bubblewrap import SandboxView, bubblewrap_argv
from fedward.node.jobs.cgroups import CgroupHost, join_command
from fedward.node.jobs.exchange import (
    STOP_WAIT_S,
    JobExchange,
    JobResult,
    ScalarSink,
    WorkerKey,
    WorkerProcess,
)
from fedward.node.jobs.isolation import WorkerIsolation
from fedward.node.jobs.job_folder import JobFolder
from fedward.node.jobs.sandbox import (
    SelfSandbox,
    clean_environment,
    gpu_devices,
    library_paths,
    python_paths,
)
from fedward.node.jobs.sealed_results import sealing_unavailable
from fedward.node.jobs.threads import ThreadBudget

log = logging.getLogger("fedward.jobs")


# The hard CPU limit bounds a worker process's whole life, in jobs' worth of CPU time;
# the worker sets a soft limit of one job's allowance before each job.
_LIFETIME_JOBS = 50


class JobRunner:
    def __init__(
        self,
        jobs_dir: Path,
        limits: JobLimits,
        isolation: WorkerIsolation | None = None,
        *,
        node_id: str = "node",
        hidden: Sequence[Path] = (),
    ) -> None:
        """``hidden``: folders with the node's secrets that no worker may see (the state
        folder always is)."""
        self._jobs_dir = jobs_dir
        self._limits = limits
        if isolation is None:
            isolation = WorkerIsolation.for_host(limits.sandbox, limits.require)
        self._cgroups: CgroupHost | None = None
        if isolation.cgroup_version is not None:
            self._cgroups, reason = CgroupHost.detect(node_id)
            if self._cgroups is None:
                isolation = isolation.without_cgroups(reason)
        self.isolation = isolation
        self._sealing_unavailable = sealing_unavailable()
        # Read before any worker starts (the v2 daemon's own group is set by now: a quota
        # of the group it came from still counts, as an ancestor's).
        self.threads = ThreadBudget.for_limits(limits)
        self._hidden = [jobs_dir.parent, *hidden]
        self._workers: dict[WorkerKey, WorkerProcess] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="job-reaper", daemon=True)
        self._reaper.start()

    def report_lines(self) -> list[str]:
        """How workers run here: the isolation's layers, the thread budget, then the
        isolation's guarantees and notes (``node start``, the log, the heartbeat)."""
        lines = self.isolation.report_lines()
        layers = len(self.isolation.layers())
        return [*lines[:layers], f"{'threads':<13}{self.threads.describe()}", *lines[layers:]]

    def refusal(self) -> str | None:
        """Why this node runs no plan, with the fix: isolation it cannot enforce, or a
        kernel without sealed memory files; None when it may."""
        return self.isolation.refusal() or self._sealing_unavailable

    def folder(self, experiment_id: str) -> JobFolder:
        """The experiment's job folder (``job_folder``), created on first use."""
        return JobFolder.create(self._jobs_dir, experiment_id, self.isolation.run_as)

    def discard_work(self, experiment_id: str) -> None:
        """After a failed job: stop the experiment's worker and empty its work folder."""
        with self._lock:
            stale = [w for k, w in self._workers.items() if k.experiment_id == experiment_id]
            stale = [w for w in stale if not w.busy]
            for worker in stale:
                del self._workers[worker.key]
        for worker in stale:
            worker.kill()
        self.folder(experiment_id).clear_work()

    def worker_pids(self) -> dict[WorkerKey, int]:
        """The warm workers, for tests and ``status`` displays."""
        with self._lock:
            return {key: w.process.pid for key, w in self._workers.items()}

    def run(
        self,
        key: WorkerKey,
        spec: wire.JobSpec,
        *,
        dataset: Path,
        deadline_s: float,
        on_scalar: ScalarSink,
        gpu: bool = False,
    ) -> JobResult:
        """Run one job to completion; a ``JobError`` when it fails, is killed or times out.
        The result's files are the caller's to check and close."""
        refusal = self.refusal()
        if refusal is not None:
            raise JobError(refusal)
        deadline = time.monotonic() + deadline_s
        worker = self._acquire(key, dataset, gpu)
        ok = False
        try:
            result = JobExchange(worker, self._limits, deadline, deadline_s, on_scalar).run(spec)
            ok = True
            return result
        finally:
            with self._lock:
                worker.busy = False
                worker.last_used = time.monotonic()
                if not ok and self._workers.get(key) is worker:
                    del self._workers[key]
            if not ok:
                worker.kill()

    def _acquire(self, key: WorkerKey, dataset: Path, gpu: bool) -> WorkerProcess:
        stale: WorkerProcess | None = None
        with self._lock:
            if self._closed.is_set():
                raise JobError("the node is stopping", hint="send the round again later")
            worker = self._workers.get(key)
            if worker is not None and worker.busy:
                raise JobError(
                    "a job of this experiment is already running on this node",
                    hint="wait for its reply before sending the next round",
                )
            if worker is not None and worker.process.poll() is None and worker.gpu == gpu:
                worker.busy = True
                return worker
            stale = worker
            worker = self._start(key, dataset, gpu)
            worker.busy = True
            self._workers[key] = worker
        if stale is not None:
            _stop(stale)
        return worker

    def _start(self, key: WorkerKey, dataset: Path, gpu: bool) -> WorkerProcess:
        folder = self.folder(key.experiment_id)
        isolation, limits = self.isolation, self._limits
        cgroup = None
        if self._cgroups is not None:
            cgroup = self._cgroups.new_group(limits.memory_mb << 20, limits.pids_max)
        asked = SelfSandbox(
            landlock=isolation.landlock >= 1,
            seccomp=("unix" if isolation.bubblewrap else "strict") if isolation.seccomp else "",
            read=(dataset, folder.inputs),
            write=(folder.work,),
            gpu=gpu,
            memory_mb=limits.memory_mb if isolation.enabled else None,
            cpu_lifetime_s=limits.cpu_s * _LIFETIME_JOBS if isolation.enabled else None,
            file_mb=limits.disk_mb if isolation.enabled else None,
            processes=limits.pids_max if isolation.enabled and cgroup is None else None,
            threads=self.threads.threads,
        )
        argv = [sys.executable, "-I", "-B", "-m", "fedward.node.jobs.worker", *asked.argv()]
        if isolation.bubblewrap is not None:
            view = SandboxView(
                python=[*python_paths(), *(library_paths(os.environ) if gpu else [])],
                read_only=(dataset, folder.inputs),
                writable=(folder.work,),
                hidden=self._hidden,
                gpu_devices=gpu_devices() if gpu else (),
                tmp_mb=min(limits.disk_mb, limits.memory_mb),
            )
            argv = bubblewrap_argv(isolation.bubblewrap, view, folder.work) + argv
        run_as = isolation.run_as
        if cgroup is not None:
            if run_as is not None:
                for procs in cgroup.procs_files():
                    os.chown(procs, *run_as)
            argv = join_command(cgroup.procs_files(), argv)
        stderr = (folder.root / "worker.log").open("ab")
        channel, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=worker_end.fileno(),
                stderr=stderr,
                cwd=folder.work,
                env=clean_environment(
                    os.environ, folder.work, gpu=gpu, threads=self.threads.environment()
                ),
                start_new_session=True,  # its own process group: killed as a whole
                close_fds=True,
                user=run_as[0] if run_as else None,
                group=run_as[1] if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except BaseException:
            channel.close()
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            stderr.close()
            worker_end.close()
        assert process.stdin is not None
        channel.setblocking(False)
        os.set_blocking(process.stdin.fileno(), False)
        log.info("started job worker pid %s for %s", process.pid, key.experiment_id)
        return WorkerProcess(
            key=key, process=process, channel=channel, folder=folder, gpu=gpu, cgroup=cgroup
        )

    def _reap_idle(self) -> None:
        interval = min(5.0, max(0.1, self._limits.idle_worker_s / 2))
        while not self._closed.wait(interval):
            now = time.monotonic()
            with self._lock:
                idle = [
                    w
                    for w in self._workers.values()
                    if not w.busy and now - w.last_used > self._limits.idle_worker_s
                ]
                for w in idle:
                    del self._workers[w.key]
            for w in idle:
                log.info("stopping idle job worker pid %s", w.process.pid)
                _stop(w)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            _stop(w)
        if self._cgroups is not None:
            self._cgroups.close()


def _stop(worker: WorkerProcess) -> None:
    """Ask an idle worker to exit; kill its tree if it does not, or has children left."""
    stdin = worker.process.stdin
    try:
        if stdin is not None:
            os.set_blocking(stdin.fileno(), True)
            stdin.write(wire.encoder.encode(wire.Shutdown()) + b"\n")
            stdin.close()
        worker.process.wait(timeout=STOP_WAIT_S)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    worker.kill()
