"""The job worker: a separate process that runs approved plan code for one experiment.

It is started by ``runner.JobRunner`` (``python -I``, a scrubbed environment, inside the
host's namespaces and cgroup). Before it reads its first job it applies the layers it
was asked for (``sandbox.apply_sandbox``), then stays warm: it reads one ``JobSpec``
per line on stdin, and writes progress and one result per job on a private copy of
stdout. Results go to fixed names in its work folder (``job_folder.result_name``); it
names no file in what it reports. Anything the plan prints goes to stderr (the node's
job log), never into the protocol stream.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import IO

from fedward.errors import FedwardError
from fedward.learning.plan import DatasetView, TrainingPlan
from fedward.learning.plan_source import load_plan_file
from fedward.node.jobs import wire
from fedward.node.jobs.job_folder import result_name
from fedward.node.jobs.sandbox import SelfSandbox, apply_sandbox
from fedward.protocol.params_wire import load_params, save_params

log = logging.getLogger("fedward.worker")


class PipeProgress:
    def __init__(self, out: IO[bytes], job_id: str) -> None:
        self._out = out
        self._job_id = job_id

    def scalar(self, name: str, value: float, step: int) -> None:
        _send(
            self._out, wire.ScalarOut(job_id=self._job_id, name=name, value=float(value), step=step)
        )

    def log(self, level: str, message: str) -> None:
        lvl = level if level in ("debug", "info", "warning", "error") else "info"
        _send(self._out, wire.LogOut(job_id=self._job_id, level=lvl, message=message[:2000]))  # type: ignore[arg-type]


def _send(out: IO[bytes], message: wire.FromWorker) -> None:
    out.write(wire.encoder.encode(message) + b"\n")
    out.flush()


class Worker:
    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
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
        plan = cls(spec.model_args)
        plan.assigned_device = spec.device
        # Tensors some aggregators send along (SCAFFOLD's control variates).
        plan.received_extras = {name: load_params(Path(p)) for name, p in spec.extras_in.items()}
        params = load_params(Path(spec.params_in))
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
        results = Path(spec.results_dir)
        save_params(outcome.params, results / result_name(spec.job_id))
        for name, extra in outcome.extras.items():
            save_params(extra, results / result_name(spec.job_id, name))
        done = time.perf_counter()
        _send(
            self._out,
            wire.ResultOut(
                job_id=spec.job_id,
                sample_count=int(outcome.sample_count),
                metrics={k: float(v) for k, v in outcome.metrics.items()},
                timings={
                    "load_s": loaded - started,
                    "train_s": trained - loaded,
                    "save_s": done - trained,
                },
                extras=sorted(outcome.extras),
            ),
        )


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
    # Only the error class and fedward's own messages travel: a plan's exception text can
    # quote data, so it stays in the node's job log. fedward's messages may name files:
    # the node's paths are masked too (and the daemon masks again: it trusts no worker).
    job_id = spec.job_id
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and any(s in str(exc) for s in _ALLOCATION_FAILURES)
    ):
        return wire.FailureOut(job_id=job_id, code="memory_limit", message="out of memory")
    if isinstance(exc, FedwardError):
        return wire.FailureOut(
            job_id=job_id, code=exc.code, message=mask_paths(exc.message, spec)[:2000]
        )
    return wire.FailureOut(
        job_id=job_id,
        code="job_failed",
        message=(
            f"training plan raised {type(exc).__name__}; "
            f"details are in the node's job log ({job_id})"
        ),
    )


def mask_paths(text: str, spec: wire.JobSpec) -> str:
    """``text`` with the node's paths (dataset, job folder) replaced by names."""
    dataset = Path(spec.dataset_path)
    places = {str(dataset): "<dataset>", str(dataset.parent): "<dataset folder>"}
    places[str(Path(spec.plan_path).parent.parent)] = "<job folder>"
    for location in sorted(places, key=len, reverse=True):
        if location not in ("/", "."):
            text = text.replace(location, places[location])
    return text


def main() -> None:
    # Keep a private handle on the real stdout for the protocol, then point fd 1 at stderr
    # so that print() in plan code cannot corrupt it.
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s worker %(message)s"
    )
    try:
        applied = apply_sandbox(SelfSandbox.from_argv(sys.argv[1:]))
    except (OSError, ValueError) as exc:
        log.error("job worker %s could not sandbox itself: %s", os.getpid(), exc)
        sys.exit(3)
    log.info("job worker %s: %s", os.getpid(), applied)
    worker = Worker(protocol_out)
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
            _send(protocol_out, _failure(message, exc))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return


if __name__ == "__main__":
    main()
