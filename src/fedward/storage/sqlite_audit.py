"""``AuditStore`` on SQLite; ``insert_audit_entry`` and ``execute_audited`` audit inside
another store's transaction, so a change and its audit entry commit together."""

from __future__ import annotations

import sqlite3

from fedward.storage.node_records import AuditEntry, AuditEvent
from fedward.storage.sqlite_database import SqliteDatabase, from_epoch, to_epoch


def insert_audit_entry(connection: sqlite3.Connection, entry: AuditEntry) -> AuditEvent:
    cursor = connection.execute(
        "INSERT INTO audit_events (at, kind, actor, subject, detail) VALUES (?, ?, ?, ?, ?)",
        (to_epoch(entry.at), entry.kind, entry.actor, entry.subject, entry.detail),
    )
    event_id = cursor.lastrowid
    if event_id is None:  # pragma: no cover - sqlite always sets it after an INSERT
        raise RuntimeError("sqlite returned no row id for an audit event")
    return AuditEvent(
        at=entry.at,
        kind=entry.kind,
        actor=entry.actor,
        subject=entry.subject,
        detail=entry.detail,
        event_id=event_id,
    )


def execute_audited(
    connection: sqlite3.Connection,
    statement: str,
    parameters: tuple[object, ...],
    audit: AuditEntry,
) -> int:
    """Run an UPDATE or DELETE; audit it only if it changed a row. Returns the row count."""
    count = connection.execute(statement, parameters).rowcount
    if count:
        insert_audit_entry(connection, audit)
    return count


def _event(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        at=from_epoch(row["at"]),
        kind=row["kind"],
        actor=row["actor"],
        subject=row["subject"],
        detail=row["detail"],
        event_id=row["event_id"],
    )


class SqliteAuditStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    def record(self, entry: AuditEntry) -> AuditEvent:
        with self._database.write() as connection:
            return insert_audit_entry(connection, entry)

    def list(
        self, limit: int, kind: str | None = None, *, before_event_id: int | None = None
    ) -> list[AuditEvent]:
        query = "SELECT * FROM audit_events"
        conditions: list[str] = []
        parameters: list[object] = []
        if kind is not None:
            conditions.append("kind = ?")
            parameters.append(kind)
        if before_event_id is not None:  # keyset paging: cheap at any depth
            conditions.append("event_id < ?")
            parameters.append(before_event_id)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        query += " ORDER BY event_id DESC LIMIT ?"
        with self._database.read() as connection:
            rows = connection.execute(query, (*parameters, limit)).fetchall()
        return [_event(row) for row in rows]
