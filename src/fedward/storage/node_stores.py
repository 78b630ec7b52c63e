"""What the node services need from storage, as interfaces with their MUST rules.

The services (``fedward.node.services``) own the rules about datasets, plans and jobs;
stores own durability and atomicity. Every rule that reads and then writes (a tag
conflict, "already approved", "already finished") needs the read and the write in one
transaction, so those methods take the check or the expected state as an argument.

Implementations: ``SqliteDatasetStore``, ``SqlitePlanStore``, ``SqliteJobStore``,
``SqliteAuditStore`` (one SQLite file, safe for several processes at once).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from fedward.storage.node_records import (
    AuditEntry,
    AuditEvent,
    DatasetRecord,
    JobOutcome,
    JobRecord,
    PlanRecord,
    PlanStatus,
)

DatasetCheck = Callable[[Sequence[DatasetRecord]], None]


class DatasetStore(Protocol):
    def add(self, record: DatasetRecord, check: DatasetCheck, audit: AuditEntry) -> None:
        """Store ``record`` and ``audit``.

        MUST call ``check`` with every stored dataset inside the same write transaction
        as the insert, and MUST write nothing if ``check`` raises (the error propagates).
        MUST raise ``Conflict`` if ``record.dataset_id`` is already stored.
        """

    def get(self, dataset_id: str) -> DatasetRecord | None: ...

    def list(self) -> list[DatasetRecord]:
        """Every dataset, oldest first."""

    def search(self, tags: Sequence[str]) -> builtins.list[DatasetRecord]:
        """Datasets carrying every one of ``tags`` (and maybe others), oldest first."""

    def delete(self, dataset_id: str, audit: AuditEntry) -> bool:
        """Remove one dataset; ``False`` (and no audit entry) if it was not there."""

    def delete_all(self, audit: AuditEntry) -> int:
        """Remove every dataset; returns how many were removed."""


@dataclass(frozen=True)
class PlanChange:
    """Replace ``before`` by ``after`` (same ``plan_id``), only if ``before`` is still current."""

    before: PlanRecord
    after: PlanRecord


class PlanStore(Protocol):
    def commit(
        self,
        *,
        inserts: Sequence[PlanRecord] = (),
        changes: Sequence[PlanChange] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """Apply every insert, change and audit entry in one transaction, or none of them.

        MUST raise ``Conflict`` if an inserted plan's id or digest is already stored, or a
        digest is changed to one another plan holds; MUST raise ``Conflict`` if the
        stored status or digest of a changed plan differs from ``change.before`` (someone
        else decided first) and ``NotFound`` if it no longer exists.
        """

    def get(self, plan_id: str) -> PlanRecord | None: ...

    def find_by_digest(self, digest: str) -> PlanRecord | None: ...

    def list(self, status: PlanStatus | None = None) -> list[PlanRecord]:
        """Plans (with ``status`` when given), oldest first."""

    def delete(self, plan_id: str, audit: AuditEntry) -> bool:
        """Remove one plan version; ``False`` (and no audit entry) if it was not there."""


class JobStore(Protocol):
    def add(self, record: JobRecord, audit: AuditEntry) -> None:
        """Store a running job; MUST raise ``Conflict`` if its id is already stored."""

    def finish(
        self,
        job_id: str,
        outcome: JobOutcome,
        message: str,
        metrics: dict[str, float],
        finished_at: datetime,
        audit: AuditEntry,
    ) -> JobRecord:
        """Record how a running job ended.

        MUST raise ``NotFound`` for an unknown job and ``Conflict`` for a job that
        already finished, writing nothing in either case.
        """

    def get(self, job_id: str) -> JobRecord | None: ...

    def list(self, limit: int) -> list[JobRecord]:
        """The ``limit`` most recently started jobs, newest first."""

    def finish_running(
        self, outcome: JobOutcome, message: str, finished_at: datetime, audit: AuditEntry
    ) -> int:
        """End every job still marked running (the node stopped under them)."""


class AuditStore(Protocol):
    def record(self, entry: AuditEntry) -> AuditEvent: ...

    def list(
        self, limit: int, kind: str | None = None, *, before_event_id: int | None = None
    ) -> list[AuditEvent]:
        """The ``limit`` most recent events (of ``kind`` when given, older than
        ``before_event_id`` when given), newest first."""
