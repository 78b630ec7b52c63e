"""The job log: every training job, who asked, on which data, with which plan, how it ended."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from fedward.core.ids import new_id, validate_id
from fedward.errors import NotFound, ValidationError
from fedward.storage.node_records import JOB_OUTCOMES, AuditEntry, JobOutcome, JobRecord, utc_now
from fedward.storage.node_stores import JobStore

MAX_MESSAGE_CHARS = 2_000
MAX_METRICS = 256
NODE = "node"


class JobService:
    def __init__(self, store: JobStore, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._store = store
        self._clock = clock

    def start(
        self,
        experiment_id: str,
        round_index: int,
        researcher_id: str,
        dataset_id: str,
        plan_digest: str,
    ) -> str:
        """Record a job that starts now; returns its ``job_id`` for ``finish``."""
        if not isinstance(round_index, int) or round_index < 0:
            raise ValidationError(
                f"round index must be a non-negative integer, got {round_index!r}"
            )
        record = JobRecord(
            job_id=new_id("job"),
            experiment_id=validate_id(experiment_id, kind="experiment id"),
            round_index=round_index,
            researcher_id=validate_id(researcher_id, kind="researcher id"),
            dataset_id=validate_id(dataset_id, kind="dataset id"),
            plan_digest=plan_digest,
            started_at=self._clock(),
        )
        detail = (
            f"experiment {experiment_id} round {round_index} dataset {dataset_id} "
            f"plan {plan_digest}"
        )
        self._store.add(record, self._audit("job_started", researcher_id, record.job_id, detail))
        return record.job_id

    def finish(
        self,
        job_id: str,
        outcome: JobOutcome,
        message: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> JobRecord:
        """Record how a job ended; a job finishes once (``Conflict`` the second time)."""
        if outcome not in JOB_OUTCOMES:
            raise ValidationError(
                f"unknown job outcome {outcome!r}", hint="one of " + ", ".join(JOB_OUTCOMES)
            )
        message = str(message)[:MAX_MESSAGE_CHARS]
        checked = _checked_metrics(metrics or {})
        detail = f"{outcome}" + (f": {message}" if message else "")
        return self._store.finish(
            validate_id(job_id, kind="job id"),
            outcome,
            message,
            checked,
            self._clock(),
            self._audit("job_finished", NODE, job_id, detail),
        )

    def list(self, limit: int = 100) -> list[JobRecord]:
        """The most recently started jobs, newest first."""
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        return self._store.list(limit)

    def get(self, job_id: str) -> JobRecord:
        record = self._store.get(validate_id(job_id, kind="job id"))
        if record is None:
            raise NotFound(f"no job with id {job_id!r}", hint="'fedward node jobs' lists them")
        return record

    def finish_interrupted(self) -> int:
        """Close jobs left running by a node that stopped under them; call once at start."""
        message = "the node stopped before the job finished"
        return self._store.finish_running(
            "killed",
            message,
            self._clock(),
            self._audit("job_finished", NODE, "", f"killed: {message}"),
        )

    def _audit(self, kind: str, actor: str, subject: str, detail: str) -> AuditEntry:
        return AuditEntry(at=self._clock(), kind=kind, actor=actor, subject=subject, detail=detail)


def _checked_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    if len(metrics) > MAX_METRICS:
        raise ValidationError(f"a job may record at most {MAX_METRICS} metrics")
    checked: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValidationError(f"invalid metric name {name!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"metric {name!r} is not a number: {value!r}") from exc
        checked[name] = number
    return checked
