"""Daemon <-> worker messages: one JSON object per line, on private pipes.

Nothing here is sent over the network; the worker never sees credentials, only paths to
files inside its job directory and the dataset it is allowed to read.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class JobSpec(msgspec.Struct, frozen=True, kw_only=True, tag="job"):
    job_id: str
    plan_path: str
    plan_sha256: str  # of the exact bytes the daemon hashed and approved
    plan_class: str
    model_args: dict[str, Any]
    training_args: dict[str, Any]
    dataset_id: str
    data_type: str
    dataset_path: str
    dataset_metadata: dict[str, Any] = {}
    params_in: str
    params_out: str
    extras_in: dict[str, str] = {}
    extras_out_dir: str = ""
    device: str = "cpu"
    cpu_seconds: int = 3600


class Shutdown(msgspec.Struct, frozen=True, tag="shutdown"):
    pass


class ScalarOut(msgspec.Struct, frozen=True, kw_only=True, tag="scalar"):
    job_id: str
    name: str
    value: float
    step: int


class LogOut(msgspec.Struct, frozen=True, kw_only=True, tag="log"):
    job_id: str
    level: Literal["debug", "info", "warning", "error"]
    message: str


class ResultOut(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    job_id: str
    sample_count: int
    metrics: dict[str, float]
    timings: dict[str, float]
    extras_out: dict[str, str] = {}


class FailureOut(msgspec.Struct, frozen=True, kw_only=True, tag="failure"):
    job_id: str
    code: str
    message: str


ToWorker = JobSpec | Shutdown
FromWorker = ScalarOut | LogOut | ResultOut | FailureOut

encoder = msgspec.json.Encoder()
to_worker_decoder = msgspec.json.Decoder(ToWorker)
from_worker_decoder = msgspec.json.Decoder(FromWorker)
