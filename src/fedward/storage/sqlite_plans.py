"""``PlanStore`` on SQLite: one row per plan version, digests unique, lineage columns."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from fedward.errors import Conflict, NotFound
from fedward.storage.node_records import AuditEntry, PlanRecord, PlanStatus
from fedward.storage.node_stores import PlanChange
from fedward.storage.sqlite_audit import execute_audited, insert_audit_entry
from fedward.storage.sqlite_database import (
    SqliteDatabase,
    from_epoch,
    from_optional_epoch,
    to_epoch,
)

_INSERT = (
    "INSERT INTO plans (plan_id, name, class_name, source, digest, kind, status, notes,"
    " decided_by, decided_at, created_at, researcher_id, description, previous_plan_id,"
    " lineage_id, version, created_by, superseded_by, superseded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Compare-and-set: the row changes only if nobody decided or re-hashed it since we read it.
_UPDATE = (
    "UPDATE plans SET name = ?, class_name = ?, source = ?, digest = ?, kind = ?, status = ?,"
    " notes = ?, decided_by = ?, decided_at = ?, created_at = ?, researcher_id = ?,"
    " description = ?, previous_plan_id = ?, lineage_id = ?, version = ?, created_by = ?,"
    " superseded_by = ?, superseded_at = ?"
    " WHERE plan_id = ? AND status = ? AND digest = ?"
)


class SqlitePlanStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    def commit(
        self,
        *,
        inserts: Sequence[PlanRecord] = (),
        changes: Sequence[PlanChange] = (),
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        with self._database.write() as connection:
            for record in inserts:
                _insert(connection, record)
            for change in changes:
                _change(connection, change)
            for entry in audit:
                insert_audit_entry(connection, entry)

    def get(self, plan_id: str) -> PlanRecord | None:
        return self._one("SELECT * FROM plans WHERE plan_id = ?", plan_id)

    def find_by_digest(self, digest: str) -> PlanRecord | None:
        return self._one("SELECT * FROM plans WHERE digest = ?", digest)

    def list(self, status: PlanStatus | None = None) -> list[PlanRecord]:
        with self._database.read() as connection:
            if status is None:
                rows = connection.execute("SELECT * FROM plans ORDER BY created_at, plan_id")
            else:
                rows = connection.execute(
                    "SELECT * FROM plans WHERE status = ? ORDER BY created_at, plan_id", (status,)
                )
            return [_record(row) for row in rows.fetchall()]

    def delete(self, plan_id: str, audit: AuditEntry) -> bool:
        with self._database.write() as connection:
            statement = "DELETE FROM plans WHERE plan_id = ?"
            return execute_audited(connection, statement, (plan_id,), audit) > 0

    def _one(self, query: str, key: str) -> PlanRecord | None:
        with self._database.read() as connection:
            row = connection.execute(query, (key,)).fetchone()
        return None if row is None else _record(row)


def _values(record: PlanRecord) -> tuple[object, ...]:
    return (
        record.plan_id,
        record.name,
        record.class_name,
        record.source,
        record.digest,
        record.kind,
        record.status,
        record.notes,
        record.decided_by,
        None if record.decided_at is None else to_epoch(record.decided_at),
        to_epoch(record.created_at),
        record.researcher_id,
        record.description,
        record.previous_plan_id,
        record.lineage_id or record.plan_id,  # a first version starts its own lineage
        record.version,
        record.created_by,
        record.superseded_by,
        None if record.superseded_at is None else to_epoch(record.superseded_at),
    )


def _insert(connection: sqlite3.Connection, record: PlanRecord) -> None:
    try:
        connection.execute(_INSERT, _values(record))
    except sqlite3.IntegrityError as exc:
        raise _duplicate(connection, record) from exc


def _change(connection: sqlite3.Connection, change: PlanChange) -> None:
    before, after = change.before, change.after
    if before.plan_id != after.plan_id:
        raise ValueError("a plan change cannot change the plan id")
    try:
        cursor = connection.execute(
            _UPDATE, (*_values(after)[1:], before.plan_id, before.status, before.digest)
        )
    except sqlite3.IntegrityError as exc:
        raise _duplicate(connection, after) from exc
    if cursor.rowcount == 1:
        return
    if connection.execute("SELECT 1 FROM plans WHERE plan_id = ?", (before.plan_id,)).fetchone():
        raise Conflict(
            f"plan {before.plan_id} changed while this change was being made",
            hint="look at it again ('fedward node plan view') and retry",
        )
    raise NotFound(f"no training plan with id {before.plan_id!r}")


def _duplicate(connection: sqlite3.Connection, record: PlanRecord) -> Conflict:
    row = connection.execute(
        "SELECT plan_id, status FROM plans WHERE digest = ? AND plan_id != ?",
        (record.digest, record.plan_id),
    ).fetchone()
    if row is not None:
        return Conflict(
            f"this exact training plan is already known as {row['plan_id']} ({row['status']})",
            hint="approve or reject that plan instead of registering it again",
        )
    return Conflict(f"plan id {record.plan_id!r} is already taken")


def _record(row: sqlite3.Row) -> PlanRecord:
    return PlanRecord(
        plan_id=row["plan_id"],
        name=row["name"],
        class_name=row["class_name"],
        source=row["source"],
        digest=row["digest"],
        kind=row["kind"],
        status=row["status"],
        notes=row["notes"],
        decided_by=row["decided_by"],
        decided_at=from_optional_epoch(row["decided_at"]),
        created_at=from_epoch(row["created_at"]),
        researcher_id=row["researcher_id"],
        description=row["description"],
        previous_plan_id=row["previous_plan_id"],
        lineage_id=row["lineage_id"],
        version=row["version"],
        created_by=row["created_by"],
        superseded_by=row["superseded_by"],
        superseded_at=from_optional_epoch(row["superseded_at"]),
    )
