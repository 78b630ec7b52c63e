"""The job worker: a separate process that runs approved plan code for one experiment.

It is started by ``runner.JobRunner`` (``python -I``, a scrubbed environment, inside the
host's namespaces and cgroup). Before it reads its first job it applies the layers it
was asked for (``sandbox.apply_sandbox``), then stays warm: it reads one ``JobSpec``
per line on stdin, and writes progress and one result per job on a private copy of
stdout, a Unix socket. A result's parameters (and extras) go into sealed memory files
whose descriptors travel with the result report (``sealed_results``); it names no file
in what it reports. Anything the plan prints goes to stderr (the node's job log), never
into the protocol stream.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from fedward.errors import FedwardError
from fedward.learning.plan import DatasetView, TrainingPlan
from fedward.learning.plan_source import load_plan_file
from fedward.node.jobs import wire
from fedward.node.jobs.path_masks import mask_paths, node_places
from fedward.node.jobs.sandbox import SelfSandbox, apply_sandbox
from fedward.node.jobs.sealed_results import close_descriptors, sealed_params
from fedward.protocol.params_wire import map_params

log = logging.getLogger("fedward.worker")


class ReportChannel:
    """The worker's end of the report socket: one line per report, and a result's file
    descriptors with its line."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, message: wire.FromWorker, files: Sequence[int] = ()) -> None:
        line = wire.encoder.encode(message) + b"\n"
        sent = socket.send_fds(self._sock, [line], list(files)) if files else 0
        self._sock.sendall(line[sent:])


class PipeProgress:
    def __init__(self, out: ReportChannel, job_id: str) -> None:
        self._out = out
        self._job_id = job_id

    def scalar(self, name: str, value: float, step: int) -> None:
        self._out.send(
            wire.ScalarOut(job_id=self._job_id, name=name, value=float(value), step=step)
        )

    def log(self, level: str, message: str) -> None:
        lvl = level if level in ("debug", "info", "warning", "error") else "info"
        self._out.send(wire.LogOut(job_id=self._job_id, level=lvl, message=message[:2000]))  # type: ignore[arg-type]


class Worker:
    def __init__(self, out: ReportChannel, threads: int | None = None) -> None:
        self._out = out
        self._threads = threads
        self._classes: dict[str, type[TrainingPlan]] = {}

    def _plan_class(self, spec: wire.JobSpec) -> type[TrainingPlan]:
        key = f"{spec.plan_sha256}:{spec.plan_class}"
        cls = self._classes.get(key)
        if cls is None:
            cls = load_plan_file(Path(spec.plan_path), spec.plan_sha256, spec.plan_class)
            self._classes[key] = cls
        return cls

    def run(self, spec: wire.JobSpec) -> None:
        started = time.perf_counter()
        _limit_cpu(spec.cpu_seconds)
        cls = self._plan_class(spec)
        # Settings no plan reads are refused here too: a researcher's client may not check.
        cls.check_model_args(spec.model_args)
        cls.check_training_args(spec.training_args)
        plan = cls(spec.model_args)
        plan.assigned_device = spec.device
        plan.node_id = spec.node_id
        plan.round_index = spec.round_index
        # Tensors some aggregators send along (SCAFFOLD's control variates). Mapped, not
        # read: the node wrote them a moment ago, so their pages are in the page cache.
        plan.received_extras = {name: map_params(Path(p)) for name, p in spec.extras_in.items()}
        params = map_params(Path(spec.params_in))
        if self._threads is not None:
            _limit_torch_threads(self._threads)
        loaded = time.perf_counter()
        dataset = DatasetView(
            dataset_id=spec.dataset_id,
            data_type=spec.data_type,
            path=Path(spec.dataset_path),
            metadata=spec.dataset_metadata,
        )
        outcome = plan.train(
            params, dataset, spec.training_args, PipeProgress(self._out, spec.job_id)
        )
        trained = time.perf_counter()
        extras = sorted(outcome.extras)
        files: list[int] = []
        try:
            files.append(sealed_params(outcome.params, "params"))
            files.extend(sealed_params(outcome.extras[name], name) for name in extras)
            done = time.perf_counter()
            report = wire.ResultOut(
                job_id=spec.job_id,
                sample_count=int(outcome.sample_count),
                metrics={k: float(v) for k, v in outcome.metrics.items()},
                timings={
                    "load_s": loaded - started,
                    "train_s": trained - loaded,
                    "save_s": done - trained,
                },
                extras=extras,
                threads=_threads(),
            )
            self._out.send(report, files)
        finally:
            close_descriptors(files)


def _threads() -> int:
    """The threads the job's arithmetic ran on: torch's intra-op threads when the plan
    uses torch, else the most a BLAS library of numpy uses."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 0
    return max((int(info.get("num_threads", 0)) for info in threadpool_info()), default=0)


def _limit_torch_threads(threads: int) -> None:
    """Hold torch's intra-op pool to the node's budget once the plan imported torch.

    The environment the runner set (OMP_NUM_THREADS...) is what torch reads when it
    starts; this covers a plan that changed it before importing torch, or that resized the
    pool in an earlier job of this warm worker. A plan that imports torch only inside
    ``train`` reads the environment. Cheap: a no-op when the size is already right."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _limit_cpu(seconds: int) -> None:
    """CPU budget for the next job: the time used so far plus this job's allowance."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = spent + max(1, seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


# How torch reports a failed host allocation (GPU memory is another matter, not our limit).
_ALLOCATION_FAILURES = ("DefaultCPUAllocator: can't allocate memory", "std::bad_alloc")


def _failure(spec: wire.JobSpec, exc: BaseException) -> wire.FailureOut:
    # What the plan raised travels to the researcher who sent it: the exception's class,
    # its message cut to MAX_PLAN_MESSAGE printable characters (a plan's text can quote
    # data: this bounds what one failed job can carry), and the line numbers of the
    # plan's own frames. The node's paths are masked (the daemon masks again: it trusts
    # no worker). The full traceback stays in the worker log (stderr) on the node.
    job_id = spec.job_id
    frames = plan_frames(exc, Path(spec.plan_path))
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and any(s in str(exc) for s in _ALLOCATION_FAILURES)
    ):
        return wire.FailureOut(job_id=job_id, code="memory_limit", message="out of memory")
    if isinstance(exc, FedwardError):
        return wire.FailureOut(
            job_id=job_id,
            code=exc.code,
            message=_masked(exc.message, spec)[:2000],
            frames=frames,
        )
    said = _masked(str(exc), spec)[: wire.MAX_PLAN_MESSAGE]
    name = type(exc).__name__
    return wire.FailureOut(
        job_id=job_id,
        code="job_failed",
        message=f"training plan raised {name}" + (f": {said}" if said else ""),
        exception=name if wire.EXCEPTION_NAME.fullmatch(name) else "Exception",
        frames=frames,
    )


def plan_frames(exc: BaseException, plan_file: Path) -> list[wire.PlanFrameOut]:
    """The frames of ``exc`` (or of its cause, for an error raised while the plan's module
    ran) that are in the plan's own file, innermost last, at most ``MAX_PLAN_FRAMES``."""
    for error in (exc, exc.__cause__):
        if error is None:
            continue
        found = [
            wire.PlanFrameOut(line=frame.lineno, function=frame.name)
            for frame in traceback.extract_tb(error.__traceback__)
            if frame.lineno
            and Path(frame.filename) == plan_file
            and wire.FUNCTION_NAME.fullmatch(frame.name)
        ]
        if found:
            return found[-wire.MAX_PLAN_FRAMES :]
    return []


def _masked(text: str, spec: wire.JobSpec) -> str:
    places = node_places(Path(spec.dataset_path), Path(spec.plan_path).parent.parent)
    return wire.printable(mask_paths(text, places))


def main() -> None:
    # Keep a private handle on the real stdout for the protocol, then point fd 1 at stderr
    # so that print() in plan code cannot corrupt it.
    protocol_out = ReportChannel(socket.socket(fileno=os.dup(1)))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s worker %(message)s"
    )
    try:
        asked = SelfSandbox.from_argv(sys.argv[1:])
        applied = apply_sandbox(asked)
    except (OSError, ValueError) as exc:
        log.error("job worker %s could not sandbox itself: %s", os.getpid(), exc)
        sys.exit(3)
    log.info("job worker %s: %s; %s threads", os.getpid(), applied, asked.threads or "default")
    worker = Worker(protocol_out, asked.threads)
    for line in sys.stdin.buffer:
        try:
            message = wire.to_worker_decoder.decode(line)
        except Exception as exc:
            log.error("unreadable job message: %s", exc)
            continue
        if isinstance(message, wire.Shutdown):
            return
        try:
            worker.run(message)
        except BaseException as exc:
            traceback.print_exc()
            protocol_out.send(_failure(message, exc))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return


if __name__ == "__main__":
    main()
