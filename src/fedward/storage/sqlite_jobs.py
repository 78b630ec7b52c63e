"""``JobStore`` on SQLite: the node's record of every training job."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from fedward.errors import Conflict, NotFound
from fedward.storage.node_records import AuditEntry, JobOutcome, JobRecord
from fedward.storage.sqlite_audit import execute_audited, insert_audit_entry
from fedward.storage.sqlite_database import (
    SqliteDatabase,
    from_epoch,
    from_optional_epoch,
    to_epoch,
)

_BY_ID = "SELECT * FROM jobs WHERE job_id = ?"


class SqliteJobStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    def add(self, record: JobRecord, audit: AuditEntry) -> None:
        with self._database.write() as connection:
            try:
                connection.execute(
                    "INSERT INTO jobs (job_id, experiment_id, round_index, researcher_id,"
                    " dataset_id, plan_digest, started_at, finished_at, outcome, message, metrics)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.job_id,
                        record.experiment_id,
                        record.round_index,
                        record.researcher_id,
                        record.dataset_id,
                        record.plan_digest,
                        to_epoch(record.started_at),
                        None if record.finished_at is None else to_epoch(record.finished_at),
                        record.outcome,
                        record.message,
                        json.dumps(record.metrics),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"job id {record.job_id!r} is already taken") from exc
            insert_audit_entry(connection, audit)

    def finish(
        self,
        job_id: str,
        outcome: JobOutcome,
        message: str,
        metrics: dict[str, float],
        finished_at: datetime,
        audit: AuditEntry,
    ) -> JobRecord:
        with self._database.write() as connection:
            row = connection.execute(_BY_ID, (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job with id {job_id!r}")
            if row["outcome"] != "running":
                raise Conflict(f"job {job_id} already finished ({row['outcome']})")
            connection.execute(
                "UPDATE jobs SET outcome = ?, message = ?, metrics = ?, finished_at = ?"
                " WHERE job_id = ?",
                (outcome, message, json.dumps(metrics), to_epoch(finished_at), job_id),
            )
            insert_audit_entry(connection, audit)
            updated = connection.execute(_BY_ID, (job_id,))
            return _record(updated.fetchone())

    def get(self, job_id: str) -> JobRecord | None:
        with self._database.read() as connection:
            row = connection.execute(_BY_ID, (job_id,)).fetchone()
        return None if row is None else _record(row)

    def list(self, limit: int) -> list[JobRecord]:
        with self._database.read() as connection:
            rows = connection.execute(
                "SELECT * FROM jobs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_record(row) for row in rows]

    def finish_running(
        self, outcome: JobOutcome, message: str, finished_at: datetime, audit: AuditEntry
    ) -> int:
        statement = (
            "UPDATE jobs SET outcome = ?, message = ?, finished_at = ? WHERE outcome = 'running'"
        )
        with self._database.write() as connection:
            return execute_audited(
                connection, statement, (outcome, message, to_epoch(finished_at)), audit
            )


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=row["job_id"],
        experiment_id=row["experiment_id"],
        round_index=row["round_index"],
        researcher_id=row["researcher_id"],
        dataset_id=row["dataset_id"],
        plan_digest=row["plan_digest"],
        started_at=from_epoch(row["started_at"]),
        finished_at=from_optional_epoch(row["finished_at"]),
        outcome=row["outcome"],
        message=row["message"],
        metrics=json.loads(row["metrics"]),
    )
