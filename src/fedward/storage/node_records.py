"""The node's durable records: datasets, training plans, jobs and audit events.

Plain frozen values, shared by the store interfaces (``node_stores``), their SQLite
implementations and the node services that apply the rules. Times are timezone-aware
UTC ``datetime`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from fedward.core.messages import DatasetSummary

PlanKind = Literal["requested", "registered", "default"]
PlanStatus = Literal["approved", "pending", "rejected"]
# What a node answers about a digest: "unknown" for one it never saw.
PlanStatusOrUnknown = Literal["approved", "pending", "rejected", "unknown"]
JobOutcome = Literal["succeeded", "failed", "killed", "timeout"]
JobState = Literal["running", "succeeded", "failed", "killed", "timeout"]

PLAN_KINDS: tuple[str, ...] = get_args(PlanKind)
PLAN_STATUSES: tuple[str, ...] = get_args(PlanStatus)
JOB_OUTCOMES: tuple[str, ...] = get_args(JobOutcome)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset the node offers. ``path`` never leaves the node: see ``summary``."""

    dataset_id: str
    name: str
    data_type: str
    tags: list[str]
    description: str
    path: Path
    shape: list[int]
    dtypes: dict[str, str]
    sample_count: int
    created_at: datetime
    # Type-specific reading options (e.g. a medical folder's demographics file), JSON values.
    options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> DatasetSummary:
        """What a researcher may see: no path, no content."""
        return DatasetSummary(
            dataset_id=self.dataset_id,
            name=self.name,
            data_type=self.data_type,
            tags=list(self.tags),
            description=self.description,
            shape=list(self.shape),
            dtypes=dict(self.dtypes),
            sample_count=self.sample_count,
        )


@dataclass(frozen=True)
class PlanRecord:
    """One version of a training plan, who wrote and asked for it, and the decision about it.

    ``digest`` binds the normalised source (see ``fedward.core.plan_digest``); only a plan
    whose status is ``approved`` authorises training with that digest.

    Versions of one plan share a ``lineage_id`` (the first version's ``plan_id``) and are
    numbered from 1 by ``version``; ``previous_plan_id`` is the version this one follows.
    Who did what is kept apart: ``created_by`` wrote this text onto the node (a researcher
    id, a GUI or CLI user, ``system``), ``researcher_id`` asked for it to run (``None``
    for a version written on the node), ``decided_by`` made the decision in ``status``.
    A version replaced by a newer approved one is ``rejected`` with ``superseded_by`` set,
    and keeps the decision that was made about it.
    """

    plan_id: str
    name: str
    class_name: str
    source: str
    digest: str
    kind: PlanKind
    status: PlanStatus
    notes: str = ""
    decided_by: str | None = None
    decided_at: datetime | None = None
    created_at: datetime = field(default_factory=utc_now)
    researcher_id: str | None = None
    description: str = ""
    previous_plan_id: str | None = None
    lineage_id: str = ""
    version: int = 1
    created_by: str = ""
    superseded_by: str | None = None
    superseded_at: datetime | None = None

    @property
    def review_state(self) -> str:
        """The status a reviewer reads: ``superseded`` for a replaced version."""
        return "superseded" if self.superseded_by is not None else self.status

    @property
    def decision(self) -> str | None:
        """What ``decided_by`` decided: a superseded version had been approved (or not decided)."""
        if self.decided_by is None:
            return None
        return "approved" if self.superseded_by is not None else self.status


@dataclass(frozen=True)
class JobRecord:
    """One training job: who asked, on what, with which plan, and how it ended."""

    job_id: str
    experiment_id: str
    round_index: int
    researcher_id: str
    dataset_id: str
    plan_digest: str
    started_at: datetime
    outcome: JobState = "running"
    finished_at: datetime | None = None
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; ``None`` while the job runs."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class AuditEntry:
    """Something an administrator, a researcher or the node itself did, to be recorded."""

    at: datetime
    kind: str
    actor: str
    subject: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AuditEvent(AuditEntry):
    """An ``AuditEntry`` as recorded, with its position in the log."""

    event_id: int = 0
