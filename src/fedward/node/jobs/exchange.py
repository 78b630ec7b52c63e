"""One job on one running worker: the worker process, and the exchange that runs a job on it.

The worker runs foreign code, so the exchange treats it as hostile: it reads reports with
a size limit and a poll, never a blocking read, so a worker that stops talking, or a child
that keeps the pipe open after the worker died, cannot hold a job past its deadline; it
watches the job tree's CPU time, OOM kills and work-folder size while the job runs; and
it says why a job ended from what the daemon observed (exit status, signal, cgroup
counters), not from what the worker claims.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
from fedward.node.jobs.cgroups import JobCgroup
from fedward.node.jobs.job_folder import JobFolder

log = logging.getLogger("fedward.jobs")

ScalarSink = Callable[[wire.ScalarOut], None]

STOP_WAIT_S = 2.0
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
class WorkerProcess:
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


class JobExchange:
    """One job on one worker: send the spec, read reports, watch the limits."""

    def __init__(
        self,
        worker: WorkerProcess,
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
            returncode = worker.process.wait(timeout=STOP_WAIT_S)
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
