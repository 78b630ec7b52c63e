"""Daemon <-> worker messages: one JSON object per line (jobs on a pipe to the worker,
reports on a Unix socket from it).

The worker runs foreign code, so everything it writes is decoded like bytes from the
network: lines have a maximum length, every field a type, a length and a pattern, and
the worker never names a file — a result's files are sealed memory files whose
descriptors travel with the result report (``sealed_results``). What the daemon sends
(paths included) is trusted by the worker.

A failure may carry what the plan said (its exception type, a bounded message) and where
(line numbers of the plan's canonical text and function names, never file names): the
daemon looks each line's text up in its own copy of the plan, never in the report.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from fedward.core.messages import MetricName  # what a researcher accepts, checked here first

MAX_LINE_BYTES = 64 * 1024
MAX_METRICS = 64
#: A plan's own exception text: enough to act on, too little to carry a table of data.
MAX_PLAN_MESSAGE = 500
MAX_PLAN_FRAMES = 8
MAX_EXTRAS = 8

JobId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
ExtraName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,39}\Z")]
ErrorCode = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,39}\Z")]
Step = Annotated[int, Meta(ge=0, le=1 << 40)]
EXCEPTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}\Z")
ExceptionName = Annotated[str, Meta(pattern=EXCEPTION_NAME.pattern)]
# Python names, and the ones the compiler makes up: <module>, <lambda>, <listcomp> ...
FUNCTION_NAME = re.compile(r"^(<[a-z]{1,20}>|[A-Za-z_][A-Za-z0-9_]{0,99})\Z")
FunctionName = Annotated[str, Meta(pattern=FUNCTION_NAME.pattern)]
PlanLine = Annotated[int, Meta(ge=1, le=1_000_000)]
# Bounded by the dataset's size by the daemon; this only keeps the number sane.
SampleCount = Annotated[int, Meta(ge=0, le=1 << 48)]


class JobSpec(msgspec.Struct, frozen=True, kw_only=True, tag="job"):
    job_id: str
    node_id: str = ""  # with the round and the experiment's seed, seeds the plan's randomness
    round_index: int = 0
    plan_path: str  # the canonical source, in the job's read-only inputs
    plan_sha256: str  # of those exact bytes
    plan_class: str
    model_args: dict[str, Any]
    training_args: dict[str, Any]
    dataset_id: str
    data_type: str
    dataset_path: str
    dataset_metadata: dict[str, Any] = {}
    params_in: str
    extras_in: dict[str, str] = {}
    device: str = "cpu"
    cpu_seconds: int = 3600


class Shutdown(msgspec.Struct, frozen=True, tag="shutdown"):
    pass


class ScalarOut(msgspec.Struct, frozen=True, kw_only=True, tag="scalar"):
    job_id: JobId
    name: MetricName
    value: float
    step: Step


class LogOut(msgspec.Struct, frozen=True, kw_only=True, tag="log"):
    job_id: JobId
    level: Literal["debug", "info", "warning", "error"]
    message: Annotated[str, Meta(max_length=2000)]


class ResultOut(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    job_id: JobId
    sample_count: SampleCount
    metrics: Annotated[dict[MetricName, float], Meta(max_length=MAX_METRICS)]
    timings: Annotated[dict[Literal["load_s", "train_s", "save_s"], float], Meta(max_length=3)]
    # Its files come as descriptors with this report: the parameters, then one per extra.
    extras: Annotated[list[ExtraName], Meta(max_length=MAX_EXTRAS)] = []
    # Threads the job's arithmetic used (torch's intra-op, else BLAS): results depend on it.
    threads: Annotated[int, Meta(ge=0, le=4096)] = 0


class PlanFrameOut(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A frame of the plan's own file: a line of its canonical text and the function."""

    line: PlanLine
    function: FunctionName


class FailureOut(msgspec.Struct, frozen=True, kw_only=True, tag="failure"):
    job_id: JobId
    code: ErrorCode
    message: Annotated[str, Meta(max_length=2000)]
    # Set when the plan's code raised (not fedward's): the exception's class name.
    exception: ExceptionName | None = None
    # Innermost last, as in a traceback; frames of other files are never sent.
    frames: Annotated[list[PlanFrameOut], Meta(max_length=MAX_PLAN_FRAMES)] = []


ToWorker = JobSpec | Shutdown
FromWorker = ScalarOut | LogOut | ResultOut | FailureOut

encoder = msgspec.json.Encoder()
to_worker_decoder = msgspec.json.Decoder(ToWorker)
_from_worker_decoder = msgspec.json.Decoder(FromWorker)


class UnreadableReport(ValueError):
    """A line from a worker that is not a valid report."""


def decode_report(line: bytes) -> FromWorker:
    """A worker's line, checked; ``UnreadableReport`` for anything else."""
    if len(line) > MAX_LINE_BYTES:
        raise UnreadableReport("line too long")
    try:
        report = _from_worker_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise UnreadableReport(str(exc)) from exc
    numbers: list[float] = []
    if isinstance(report, ScalarOut):
        numbers = [report.value]
    elif isinstance(report, ResultOut):
        numbers = [*report.metrics.values(), *report.timings.values()]
    if not all(math.isfinite(n) for n in numbers):
        raise UnreadableReport("a number is not finite")
    return report


def printable(text: str) -> str:
    """``text`` with control characters replaced: a worker's words go into logs as one line."""
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)
