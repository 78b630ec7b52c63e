"""The daemon side of training jobs: warm, isolated workers, one per experiment.

Starting a Python process with the ML imports costs about half a second, so a worker is
kept per (experiment, plan, dataset) and reused across rounds; it is stopped after it
sat idle for ``JobLimits.idle_worker_s``, after any failure (its memory may be in a bad
state), or when the daemon stops. Every job has a wall-clock deadline: past it the
worker's whole process group is killed and the job reported as timed out.

Limits are set by the worker on itself before it loads plan code (``worker.main``), not
in a ``preexec_fn``, which is unsafe in a process with threads like the daemon.
Memory is bounded with RLIMIT_DATA, not RLIMIT_AS: RLIMIT_DATA counts the private
writable memory a job can actually fill (heap, arrays, tensors, thread stacks), while
RLIMIT_AS also counts address space merely reserved — glibc reserves 64 MiB per malloc
arena (one per thread that allocates), CUDA reserves tens of GiB of address space at
initialisation — so an address-space limit that is tight enough to protect the node
breaks GPU workers and many-core hosts. Seen on an H100: with RLIMIT_AS at 4 GiB, CUDA
fails to initialise ("out of memory"); with RLIMIT_DATA at 4 GiB a torch plan trains.
What RLIMIT_DATA does not count is shared memory a plan maps on purpose; a container's
memory limit (cgroup) is the backstop for that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from fedward.config.model import JobLimits
from fedward.errors import JobError, JobOutOfCpu, JobOutOfMemory, JobTimedOut, JobWorkerDied
from fedward.node.jobs import wire
from fedward.node.jobs.sandbox import WorkerIsolation, clean_environment, sandbox_argv

log = logging.getLogger("fedward.jobs")

ScalarSink = Callable[[wire.ScalarOut], None]

# The hard CPU limit bounds a worker's whole life, in jobs' worth of CPU time; the worker
# sets a soft limit of one job's allowance before each job.
_LIFETIME_JOBS = 50
_STOP_WAIT_S = 2.0


@dataclass(frozen=True)
class WorkerKey:
    experiment_id: str
    plan_sha256: str
    dataset_id: str


@dataclass
class _Worker:
    key: WorkerKey
    process: subprocess.Popen[bytes]
    gpu: bool
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False


class JobRunner:
    def __init__(
        self, jobs_dir: Path, limits: JobLimits, isolation: WorkerIsolation | None = None
    ) -> None:
        self._jobs_dir = jobs_dir
        self._limits = limits
        self.isolation = WorkerIsolation.for_host() if isolation is None else isolation
        self._workers: dict[WorkerKey, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="job-reaper", daemon=True)
        self._reaper.start()

    def job_dir(self, experiment_id: str) -> Path:
        """The experiment's folder, the only one its worker may write (created 0700)."""
        if not self._jobs_dir.is_dir():
            self._jobs_dir.mkdir(parents=True, exist_ok=True)
            self._jobs_dir.chmod(0o700)
        path = self._jobs_dir / experiment_id
        path.mkdir(exist_ok=True, mode=0o700)
        if self.isolation.run_as is not None:
            self._open_to_worker_user(path, *self.isolation.run_as)
        return path

    def worker_pids(self) -> dict[WorkerKey, int]:
        """The warm workers, for tests and ``status`` displays."""
        with self._lock:
            return {key: w.process.pid for key, w in self._workers.items()}

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
        """Run one job to completion; a ``JobError`` when it fails, is killed or times out."""
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
                if not ok and self._workers.get(key) is worker:
                    del self._workers[key]
            if not ok:
                _kill(worker.process)

    def _acquire(self, key: WorkerKey, readable: list[Path], gpu: bool) -> _Worker:
        stale: _Worker | None = None
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
            worker = self._start(key, readable, gpu)
            worker.busy = True
            self._workers[key] = worker
        if stale is not None:
            _stop(stale.process)
        return worker

    def _start(self, key: WorkerKey, readable: list[Path], gpu: bool) -> _Worker:
        workdir = self.job_dir(key.experiment_id)
        argv = [
            sys.executable,
            "-m",
            "fedward.node.jobs.worker",
            f"--memory-mb={self._limits.memory_mb}",
            f"--cpu-lifetime-s={self._limits.cpu_s * _LIFETIME_JOBS}",
        ]
        if self.isolation.landlock:
            argv += sandbox_argv(readable, [workdir], gpu)
        run_as = self.isolation.run_as
        stderr = (workdir / "worker.log").open("ab")
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=workdir,
                env=clean_environment(os.environ, workdir),
                start_new_session=True,  # its own process group: killed as a whole
                close_fds=True,
                user=run_as[0] if run_as else None,
                group=run_as[1] if run_as else None,
                extra_groups=[] if run_as else None,
            )
        finally:
            stderr.close()
        log.info("started job worker pid %s for %s", process.pid, key.experiment_id)
        return _Worker(key=key, process=process, gpu=gpu)

    def _open_to_worker_user(self, workdir: Path, uid: int, gid: int) -> None:
        """Without Landlock, as root: the worker user owns its job directory and may pass
        through (not list) the directories above it, up to the node's state directory."""
        os.chown(workdir, uid, gid)
        for parent in (self._jobs_dir, self._jobs_dir.parent):
            mode = parent.stat().st_mode & 0o777
            if mode & 0o001 == 0:
                parent.chmod(mode | 0o001)

    def _exchange(
        self, worker: _Worker, spec: wire.JobSpec, deadline_s: float, on_scalar: ScalarSink
    ) -> wire.ResultOut:
        process = worker.process
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(wire.encoder.encode(spec) + b"\n")
            process.stdin.flush()
        except OSError as exc:
            raise JobWorkerDied("the job worker stopped before the job started") from exc
        deadline_passed = threading.Event()

        def at_deadline() -> None:
            deadline_passed.set()
            _kill(process)

        timer = threading.Timer(deadline_s, at_deadline)
        timer.daemon = True
        timer.start()
        try:
            for line in process.stdout:
                try:
                    message = wire.from_worker_decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise JobWorkerDied("the job worker sent an unreadable message") from exc
                if isinstance(message, wire.ScalarOut):
                    on_scalar(message)
                elif isinstance(message, wire.LogOut):
                    log.info("job %s: %s", spec.job_id, message.message)
                elif isinstance(message, wire.ResultOut):
                    return message
                else:
                    raise _failure_error(message)
        finally:
            timer.cancel()
        returncode = process.wait()
        if deadline_passed.is_set():
            raise JobTimedOut(
                f"the job was stopped at its deadline ({deadline_s:.1f} s after it started)",
                hint="give the round more time, or train on less per round",
            )
        raise _death_error(returncode, self._limits)

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
                _stop(w.process)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            _stop(w.process)


def _failure_error(message: wire.FailureOut) -> JobError:
    if message.code == "memory_limit":
        return JobOutOfMemory(
            message.message,
            hint="use less memory per round (smaller batches or model), or ask the node's "
            "administrator to raise its [jobs] memory_mb",
        )
    return JobError(message.message)


def _death_error(returncode: int, limits: JobLimits) -> JobError:
    if returncode == -signal.SIGXCPU:
        return JobOutOfCpu(
            f"the job used more than its {limits.cpu_s} s of CPU time and was stopped",
            hint="train on less per round, or ask the node's administrator to raise its "
            "[jobs] cpu_s",
        )
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = " (the system may be out of memory)" if returncode == -signal.SIGKILL else ""
        return JobWorkerDied(f"the job worker was killed by {name}{cause}")
    return JobWorkerDied(f"the job worker exited with status {returncode}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.write(wire.encoder.encode(wire.Shutdown()) + b"\n")
            process.stdin.close()
        process.wait(timeout=_STOP_WAIT_S)
    except (OSError, subprocess.TimeoutExpired):
        _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
