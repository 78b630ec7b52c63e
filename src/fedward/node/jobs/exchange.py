"""One job on one running worker: the worker process, and the exchange that runs a job on it.

The worker runs foreign code, so the exchange treats it as hostile: it reads reports with
a size limit and a poll, never a blocking read, so a worker that stops talking, or a child
that keeps the socket open after the worker died, cannot hold a job past its deadline; it
watches the job tree's CPU time, OOM kills and work-folder size while the job runs; and
it says why a job ended from what the daemon observed (exit status, signal, cgroup
counters), not from what the worker claims.

Reports come on a Unix socket, so that a result's files can come with them as
descriptors (``sealed_results``): at most one per file a result holds, taken only with
the result report (its parameters, then its extras in the report's order); any other
count ends the job, and every descriptor not taken is closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
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
from fedward.node.jobs.sealed_results import close_descriptors

log = logging.getLogger("fedward.jobs")

ScalarSink = Callable[[wire.ScalarOut], None]

STOP_WAIT_S = 2.0
#: A result's files: its parameters and at most ``wire.MAX_EXTRAS`` extras.
MAX_RESULT_FILES = 1 + wire.MAX_EXTRAS
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
    channel: socket.socket  # the worker's reports, and its results' descriptors
    folder: JobFolder
    gpu: bool
    cgroup: JobCgroup | None
    last_used: float = field(default_factory=time.monotonic)
    busy: bool = False
    pending: bytearray = field(default_factory=bytearray)  # a report line not yet complete
    received: list[int] = field(default_factory=list)  # descriptors not yet taken

    def close_received(self) -> None:
        close_descriptors(self.received)
        self.received.clear()

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
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self.channel.close()
        self.close_received()
        if self.cgroup is not None:
            self.cgroup.remove()


@dataclass(frozen=True)
class JobResult:
    """A job's result report and the descriptors of its files, not yet checked
    (``sealed_results.take_sealed``): ``files[0]`` its parameters, then one per name in
    ``report.extras``. The caller owns the descriptors."""

    report: wire.ResultOut
    files: list[int]

    def close(self) -> None:
        close_descriptors(self.files)


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

    def run(self, spec: wire.JobSpec) -> JobResult:
        # Descriptors a worker passed between jobs belong to no job.
        self._worker.close_received()
        try:
            return self._run(spec)
        except BaseException:
            self._worker.close_received()
            raise

    def _run(self, spec: wire.JobSpec) -> JobResult:
        self._send(wire.encoder.encode(spec) + b"\n")
        channel = self._worker.channel
        while True:
            self._check_limits()
            ready, _, _ = select.select([channel], [], [], self._wait_s())
            if ready:
                chunk = self._receive()
                if chunk is None:  # end of file
                    break
                report = self._take(chunk, spec.job_id)
                if report is not None:
                    return self._result(report)
            elif self._worker.process.poll() is not None:
                # The worker is gone; a child of it may still hold the socket open.
                break
        raise self._ended()

    def _receive(self) -> bytes | None:
        """What the worker sent (b"" when nothing yet, None at its end), keeping the
        descriptors that came with it."""
        worker = self._worker
        try:
            data, fds, flags, _ = socket.recv_fds(
                worker.channel, wire.MAX_LINE_BYTES, MAX_RESULT_FILES, socket.MSG_CMSG_CLOEXEC
            )
        except BlockingIOError:
            return b""
        except OSError:  # ECONNRESET: the worker is gone
            return None
        worker.received.extend(fds)
        if flags & socket.MSG_CTRUNC or len(worker.received) > MAX_RESULT_FILES:
            raise JobWorkerDied("the job worker passed more files than a result holds")
        return data or None

    def _result(self, report: wire.ResultOut) -> JobResult:
        files, self._worker.received = self._worker.received, []
        if len(files) != 1 + len(report.extras):
            JobResult(report, files).close()
            raise JobWorkerDied(
                f"the job worker passed {len(files)} files with a result of "
                f"{1 + len(report.extras)}"
            )
        return JobResult(report, files)

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
