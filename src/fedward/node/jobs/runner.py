"""The daemon side of training jobs: warm, isolated workers, one per experiment.

Starting a Python process with the ML imports costs about half a second, so a worker is
kept per (experiment, plan, dataset) and reused across rounds; it is stopped after it
sat idle for ``JobLimits.idle_worker_s``, after any failure (its memory may be in a bad
state), or when the daemon stops. Every job has a wall-clock deadline: past it the
worker is killed and the job reported as timed out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fedward.config.model import JobLimits
from fedward.errors import JobError
from fedward.node.jobs import wire
from fedward.node.jobs.sandbox import clean_environment, sandbox_argv

log = logging.getLogger("fedward.jobs")

ScalarSink = Callable[[wire.ScalarOut], None]


@dataclass(frozen=True)
class WorkerKey:
    experiment_id: str
    plan_sha256: str
    dataset_id: str


@dataclass
class _Worker:
    key: WorkerKey
    process: subprocess.Popen[bytes]
    workdir: Path
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False


class JobRunner:
    def __init__(self, jobs_dir: Path, limits: JobLimits, *, sandbox: bool = True) -> None:
        self._jobs_dir = jobs_dir
        self._limits = limits
        self._sandbox = sandbox
        self._workers: dict[WorkerKey, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="job-reaper", daemon=True)
        self._reaper.start()

    def job_dir(self, experiment_id: str) -> Path:
        path = self._jobs_dir / experiment_id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def run(
        self,
        key: WorkerKey,
        spec: wire.JobSpec,
        *,
        readable: list[Path],
        deadline_s: float,
        on_scalar: ScalarSink,
        gpu: bool = False,
    ) -> wire.ResultOut:
        """Run one job to completion; JobError when it fails, is killed or times out."""
        worker = self._acquire(key, readable, gpu)
        ok = False
        try:
            result = self._exchange(worker, spec, deadline_s, on_scalar)
            ok = True
            return result
        finally:
            with self._lock:
                worker.busy = False
                worker.last_used = time.monotonic()
                if not ok:
                    self._workers.pop(key, None)
            if not ok:
                _kill(worker.process)

    def _acquire(self, key: WorkerKey, readable: list[Path], gpu: bool) -> _Worker:
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and worker.process.poll() is None and not worker.busy:
                worker.busy = True
                return worker
            if worker is not None and worker.busy:
                raise JobError("a job of this experiment is already running on this node")
            worker = self._start(key, readable, gpu)
            worker.busy = True
            self._workers[key] = worker
            return worker

    def _start(self, key: WorkerKey, readable: list[Path], gpu: bool) -> _Worker:
        workdir = self.job_dir(key.experiment_id)
        argv = [sys.executable, "-m", "fedward.node.jobs.worker"]
        if self._sandbox:
            argv += sandbox_argv(readable, [workdir], gpu)
        memory = self._limits.memory_mb * 1024 * 1024
        # The hard CPU limit bounds a worker's whole life; the worker sets a soft limit per job.
        cpu_hard = self._limits.cpu_s * 50

        def limit() -> None:  # runs in the child between fork and exec
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_hard, cpu_hard))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        stderr = (workdir / "worker.log").open("ab")
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=workdir,
                env=clean_environment(os.environ, workdir),
                preexec_fn=limit,
                close_fds=True,
            )
        finally:
            stderr.close()
        log.info("started job worker pid %s for %s", process.pid, key.experiment_id)
        return _Worker(key=key, process=process, workdir=workdir)

    def _exchange(
        self, worker: _Worker, spec: wire.JobSpec, deadline_s: float, on_scalar: ScalarSink
    ) -> wire.ResultOut:
        process = worker.process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(wire.encoder.encode(spec) + b"\n")
            process.stdin.flush()
        except OSError as exc:
            raise JobError("the job worker stopped before the job started") from exc
        timer = threading.Timer(deadline_s, _kill, args=(process,))
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        try:
            for line in process.stdout:
                message = wire.from_worker_decoder.decode(line)
                if isinstance(message, wire.ScalarOut):
                    on_scalar(message)
                elif isinstance(message, wire.LogOut):
                    log.info("job %s: %s", spec.job_id, message.message)
                elif isinstance(message, wire.ResultOut):
                    return message
                elif isinstance(message, wire.FailureOut):
                    raise JobError(message.message, hint=message.code)
        finally:
            timer.cancel()
        returncode = process.wait()
        elapsed = time.monotonic() - started
        if elapsed >= deadline_s - 0.05:
            raise JobError(
                f"the job was stopped at its deadline of {deadline_s:.0f} s", hint="timeout"
            )
        killed_by_cpu_limit = returncode in (-signal.SIGXCPU, -signal.SIGKILL)
        if killed_by_cpu_limit:
            raise JobError("the job exceeded its CPU time limit", hint="cpu_limit")
        raise JobError(f"the job worker died (exit status {returncode})", hint="worker_died")

    def _reap_idle(self) -> None:
        while not self._closed.wait(5.0):
            now = time.monotonic()
            with self._lock:
                idle = [
                    w
                    for w in self._workers.values()
                    if not w.busy and now - w.last_used > self._limits.idle_worker_s
                ]
                for w in idle:
                    self._workers.pop(w.key, None)
            for w in idle:
                _stop(w.process)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            _stop(w.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.write(wire.encoder.encode(wire.Shutdown()) + b"\n")
            process.stdin.close()
        process.wait(timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
