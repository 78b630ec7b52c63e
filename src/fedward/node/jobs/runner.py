"""The daemon side of training jobs: warm, isolated workers, one per experiment.

Starting a Python process with the ML imports costs about half a second, so a worker is
kept per (experiment, plan, dataset) and reused across rounds; it is stopped after it
sat idle for ``JobLimits.idle_worker_s``, after any failure (its memory may be in a bad
state), or when the daemon stops.

A worker is started as ``[sh joining its cgroup] [bwrap ...] python -I -m
fedward.node.jobs.worker [its own layers]`` (``isolation`` says which parts this host
has). The runner treats it as hostile: it reads the worker's reports with a size limit
and a poll, never a blocking read, so a worker that stops talking, or a child that keeps
the pipe open after the worker died, cannot hold a job past its deadline; it watches the
job tree's CPU time, memory events and work-folder size while the job runs; and on any
failure it kills the whole tree (bubblewrap's PID namespace, the cgroup, the process
group), so no process outlives its job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedward.config.model import JobLimits
from fedward.errors import (
    JobError,
    JobOutOfCpu,
    JobOutOfMemory,
    JobTimedOut,
    JobWorkerDied,
    PlanFrame,
)
from fedward.node.jobs import wire
from fedward.node.jobs.bubblewrap import SandboxView, bubblewrap_argv
from fedward.node.jobs.cgroups import CgroupHost, JobCgroup, join_command
from fedward.node.jobs.isolation import WorkerIsolation
from fedward.node.jobs.job_folder import JobFolder
from fedward.node.jobs.sandbox import SelfSandbox, clean_environment, gpu_devices, python_paths

log = logging.getLogger("fedward.jobs")

ScalarSink = Callable[[wire.ScalarOut], None]

# The hard CPU limit bounds a worker process's whole life, in jobs' worth of CPU time;
# the worker sets a soft limit of one job's allowance before each job.
_LIFETIME_JOBS = 50
_STOP_WAIT_S = 2.0
_POLL_S = 0.2
_DISK_CHECK_S = 1.0
# Scalars forwarded to the researcher: a burst, then this many per second.
_SCALAR_BURST, _SCALARS_PER_S = 200, 20.0


@dataclass(frozen=True)
class WorkerKey:
    experiment_id: str
    plan_sha256: str
    dataset_id: str


@dataclass
class _Worker:
    key: WorkerKey
    process: subprocess.Popen[bytes]
    folder: JobFolder
    gpu: bool
    cgroup: JobCgroup | None
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False
    pending: bytearray = field(default_factory=bytearray)  # a report line not yet complete

    def kill(self) -> None:
        """SIGKILL the whole tree: bubblewrap (its namespace dies with it), the process
        group, every member of the cgroup."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if self.cgroup is not None:
            self.cgroup.remove()


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
        self._hidden = [jobs_dir.parent, *hidden]
        self._workers: dict[WorkerKey, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="job-reaper", daemon=True)
        self._reaper.start()

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
    ) -> wire.ResultOut:
        """Run one job to completion; a ``JobError`` when it fails, is killed or times out."""
        refusal = self.isolation.refusal()
        if refusal is not None:
            raise JobError(refusal)
        deadline = time.monotonic() + deadline_s
        worker = self._acquire(key, dataset, gpu)
        ok = False
        try:
            result = _Exchange(worker, self._limits, deadline, deadline_s, on_scalar).run(spec)
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

    def _acquire(self, key: WorkerKey, dataset: Path, gpu: bool) -> _Worker:
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
            worker = self._start(key, dataset, gpu)
            worker.busy = True
            self._workers[key] = worker
        if stale is not None:
            _stop(stale)
        return worker

    def _start(self, key: WorkerKey, dataset: Path, gpu: bool) -> _Worker:
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
        )
        argv = [sys.executable, "-I", "-B", "-m", "fedward.node.jobs.worker", *asked.argv()]
        if isolation.bubblewrap is not None:
            view = SandboxView(
                python=python_paths(),
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
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=folder.work,
                env=clean_environment(os.environ, folder.work),
                start_new_session=True,  # its own process group: killed as a whole
                close_fds=True,
                user=run_as[0] if run_as else None,
                group=run_as[1] if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            stderr.close()
        assert process.stdout is not None and process.stdin is not None
        os.set_blocking(process.stdout.fileno(), False)
        os.set_blocking(process.stdin.fileno(), False)
        log.info("started job worker pid %s for %s", process.pid, key.experiment_id)
        return _Worker(key=key, process=process, folder=folder, gpu=gpu, cgroup=cgroup)

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


class _Exchange:
    """One job on one worker: send the spec, read reports, watch the limits."""

    def __init__(
        self,
        worker: _Worker,
        limits: JobLimits,
        deadline: float,
        deadline_s: float,
        on_scalar: ScalarSink,
    ) -> None:
        self._worker = worker
        self._limits = limits
        self._deadline = deadline
        self._deadline_s = deadline_s
        self._forward = _ScalarLimiter(on_scalar)
        cgroup = worker.cgroup
        self._cpu_at_start = cgroup.cpu_seconds() if cgroup else 0.0
        self._ooms_at_start = cgroup.oom_kills() if cgroup else 0
        self._next_disk_check = 0.0

    def run(self, spec: wire.JobSpec) -> wire.ResultOut:
        self._send(wire.encoder.encode(spec) + b"\n")
        stdout = self._worker.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while True:
            self._check_limits()
            ready, _, _ = select.select([fd], [], [], self._wait_s())
            if ready:
                chunk = _read_available(fd)
                if chunk is None:  # end of file
                    break
                result = self._take(chunk, spec.job_id)
                if result is not None:
                    return result
            elif self._worker.process.poll() is not None:
                # The worker is gone; a child of it may still hold the pipe open.
                break
        raise self._ended()

    def _wait_s(self) -> float:
        return max(0.0, min(_POLL_S, self._deadline - time.monotonic()))

    def _send(self, data: bytes) -> None:
        stdin = self._worker.process.stdin
        assert stdin is not None
        view = memoryview(data)
        while view:
            self._check_limits()
            _, ready, _ = select.select([], [stdin.fileno()], [], self._wait_s())
            if not ready:
                if self._worker.process.poll() is not None:
                    raise JobWorkerDied("the job worker stopped before the job started")
                continue
            try:
                view = view[os.write(stdin.fileno(), view) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise JobWorkerDied("the job worker stopped before the job started") from exc

    def _take(self, chunk: bytes, job_id: str) -> wire.ResultOut | None:
        pending = self._worker.pending
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            result = self._report(line, job_id)
            if result is not None:
                return result
        if len(pending) > wire.MAX_LINE_BYTES:
            raise JobWorkerDied("the job worker sent an unreadable message")
        return None

    def _report(self, line: bytes, job_id: str) -> wire.ResultOut | None:
        try:
            report = wire.decode_report(line)
        except wire.UnreadableReport as exc:
            log.warning("job %s: unreadable report from the worker (%s)", job_id, exc)
            raise JobWorkerDied("the job worker sent an unreadable message") from exc
        if report.job_id != job_id:
            raise JobWorkerDied("the job worker answered for another job")
        if isinstance(report, wire.ScalarOut):
            self._forward(report)
        elif isinstance(report, wire.LogOut):
            log.info("job %s: %s", job_id, wire.printable(report.message))
        elif isinstance(report, wire.ResultOut):
            self._forward.summarise(job_id)
            return report
        else:
            raise _failure_error(report)
        return None

    def _check_limits(self) -> None:
        worker, limits = self._worker, self._limits
        if time.monotonic() >= self._deadline:
            worker.kill()
            raise JobTimedOut(
                f"the job was stopped at its deadline ({self._deadline_s:.1f} s after it started)",
                hint="give the round more time, or train on less per round",
            )
        if worker.cgroup is not None:
            used = worker.cgroup.cpu_seconds() - self._cpu_at_start
            if used > limits.cpu_s:
                worker.kill()
                raise _cpu_error(limits)
            # The kernel killed a process of the tree for the memory limit: the job's
            # memory is spent, even if the worker itself lives on.
            if worker.cgroup.oom_kills() > self._ooms_at_start:
                worker.kill()
                raise _memory_error(limits)
        now = time.monotonic()
        if now >= self._next_disk_check:
            self._next_disk_check = now + _DISK_CHECK_S
            if worker.folder.work_bytes() > limits.disk_mb << 20:
                worker.kill()
                raise JobError(
                    f"the job wrote more than its {limits.disk_mb} MiB to disk and was stopped",
                    hint="write less, or ask the node's administrator to raise [jobs] disk_mb",
                )

    def _ended(self) -> JobError:
        """Why the worker stopped without a result (what the daemon saw, not what it said)."""
        worker = self._worker
        try:
            returncode = worker.process.wait(timeout=_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            worker.kill()  # it closed its pipe but lives on
            return JobWorkerDied("the job worker closed its channel to the node")
        cgroup = worker.cgroup
        if cgroup is not None and cgroup.oom_kills() > self._ooms_at_start:
            return _memory_error(self._limits)
        return _death_error(returncode, self._limits)


class _ScalarLimiter:
    """Progress scalars go to the broker: a plan cannot flood it (token bucket)."""

    def __init__(self, sink: ScalarSink) -> None:
        self._sink = sink
        self._tokens = float(_SCALAR_BURST)
        self._last = time.monotonic()
        self.dropped = 0

    def __call__(self, scalar: wire.ScalarOut) -> None:
        now = time.monotonic()
        self._tokens = min(_SCALAR_BURST, self._tokens + (now - self._last) * _SCALARS_PER_S)
        self._last = now
        if self._tokens < 1:
            self.dropped += 1
            return
        self._tokens -= 1
        self._sink(scalar)

    def summarise(self, job_id: str) -> None:
        if self.dropped:
            log.info(
                "job %s: %d progress scalars over the rate limit dropped", job_id, self.dropped
            )


def _read_available(fd: int) -> bytes | None:
    try:
        data = os.read(fd, wire.MAX_LINE_BYTES)
    except BlockingIOError:
        return b""
    return data or None


def _failure_error(report: wire.FailureOut) -> JobError:
    """A worker's failure report: its code picks nothing but the memory case, its text is
    cut to one printable paragraph (it may still be the plan's choice of words), and its
    frames are line numbers only (the caller, who holds the plan, adds their text)."""
    if report.code == "memory_limit":
        return JobOutOfMemory(
            "the job ran out of memory: it needs more than this node's job memory limit",
            hint="use less memory per round (smaller batches or model), or ask the node's "
            "administrator to raise its [jobs] memory_mb",
        )
    frames = tuple(PlanFrame(frame.line, frame.function) for frame in report.frames)
    return JobError(wire.printable(report.message)[:1000], plan_frames=frames)


def _memory_error(limits: JobLimits) -> JobOutOfMemory:
    return JobOutOfMemory(
        f"the job used more than its {limits.memory_mb} MiB of memory and was stopped",
        hint="use less memory per round (smaller batches or model), or ask the node's "
        "administrator to raise its [jobs] memory_mb",
    )


def _cpu_error(limits: JobLimits) -> JobOutOfCpu:
    return JobOutOfCpu(
        f"the job used more than its {limits.cpu_s} s of CPU time and was stopped",
        hint="train on less per round, or ask the node's administrator to raise its [jobs] cpu_s",
    )


def _death_error(returncode: int, limits: JobLimits) -> JobError:
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return _cpu_error(limits)
    if returncode < 0 or returncode > 128:
        number = -returncode if returncode < 0 else returncode - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        cause = " (the system may be out of memory)" if number == signal.SIGKILL else ""
        return JobWorkerDied(f"the job worker was killed by {name}{cause}")
    return JobWorkerDied(f"the job worker exited with status {returncode}")


def _stop(worker: _Worker) -> None:
    """Ask an idle worker to exit; kill its tree if it does not, or has children left."""
    stdin = worker.process.stdin
    try:
        if stdin is not None:
            os.set_blocking(stdin.fileno(), True)
            stdin.write(wire.encoder.encode(wire.Shutdown()) + b"\n")
            stdin.close()
        worker.process.wait(timeout=_STOP_WAIT_S)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    worker.kill()
