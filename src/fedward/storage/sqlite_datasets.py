"""``DatasetStore`` on SQLite: one row per dataset, one row per (dataset, tag)."""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from fedward.errors import Conflict
from fedward.storage.node_records import AuditEntry, DatasetRecord
from fedward.storage.node_stores import DatasetCheck
from fedward.storage.sqlite_audit import execute_audited, insert_audit_entry
from fedward.storage.sqlite_database import SqliteDatabase, from_epoch, to_epoch

_ALL = "SELECT * FROM datasets ORDER BY created_at, dataset_id"


class SqliteDatasetStore:
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    def add(self, record: DatasetRecord, check: DatasetCheck, audit: AuditEntry) -> None:
        with self._database.write() as connection:
            check(_select(connection, _ALL))
            try:
                connection.execute(
                    "INSERT INTO datasets (dataset_id, name, data_type, description, path, shape,"
                    " dtypes, sample_count, created_at, options)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.dataset_id,
                        record.name,
                        record.data_type,
                        record.description,
                        str(record.path),
                        json.dumps(record.shape),
                        json.dumps(record.dtypes),
                        record.sample_count,
                        to_epoch(record.created_at),
                        json.dumps(record.options),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"dataset id {record.dataset_id!r} is already taken") from exc
            connection.executemany(
                "INSERT INTO dataset_tags (dataset_id, position, tag) VALUES (?, ?, ?)",
                [(record.dataset_id, position, tag) for position, tag in enumerate(record.tags)],
            )
            insert_audit_entry(connection, audit)

    def get(self, dataset_id: str) -> DatasetRecord | None:
        with self._database.read() as connection:
            found = _select(
                connection, "SELECT * FROM datasets WHERE dataset_id = ?", (dataset_id,)
            )
        return found[0] if found else None

    def list(self) -> list[DatasetRecord]:
        with self._database.read() as connection:
            return _select(connection, _ALL)

    def search(self, tags: Sequence[str]) -> builtins.list[DatasetRecord]:
        wanted = sorted(set(tags))
        if not wanted:
            return self.list()
        # The tags travel as one JSON array parameter: no SQL is built from values.
        query = (
            "SELECT * FROM datasets WHERE dataset_id IN (SELECT dataset_id FROM dataset_tags"
            " WHERE tag IN (SELECT value FROM json_each(?))"
            " GROUP BY dataset_id HAVING COUNT(*) = ?) ORDER BY created_at, dataset_id"
        )
        with self._database.read() as connection:
            return _select(connection, query, (json.dumps(wanted), len(wanted)))

    def delete(self, dataset_id: str, audit: AuditEntry) -> bool:
        with self._database.write() as connection:
            statement = "DELETE FROM datasets WHERE dataset_id = ?"
            return execute_audited(connection, statement, (dataset_id,), audit) > 0

    def delete_all(self, audit: AuditEntry) -> int:
        with self._database.write() as connection:
            return execute_audited(connection, "DELETE FROM datasets", (), audit)


def _select(
    connection: sqlite3.Connection, query: str, parameters: tuple[object, ...] = ()
) -> list[DatasetRecord]:
    rows = connection.execute(query, parameters).fetchall()
    tags = _tags_of(connection, [row["dataset_id"] for row in rows])
    return [
        DatasetRecord(
            dataset_id=row["dataset_id"],
            name=row["name"],
            data_type=row["data_type"],
            tags=tags.get(row["dataset_id"], []),
            description=row["description"],
            path=Path(row["path"]),
            shape=json.loads(row["shape"]),
            dtypes=json.loads(row["dtypes"]),
            sample_count=row["sample_count"],
            created_at=from_epoch(row["created_at"]),
            options=json.loads(row["options"]),
        )
        for row in rows
    ]


def _tags_of(connection: sqlite3.Connection, dataset_ids: list[str]) -> dict[str, list[str]]:
    if not dataset_ids:
        return {}
    tags: dict[str, list[str]] = {}
    rows = connection.execute(
        "SELECT dataset_id, tag FROM dataset_tags"
        " WHERE dataset_id IN (SELECT value FROM json_each(?)) ORDER BY dataset_id, position",
        (json.dumps(dataset_ids),),
    ).fetchall()
    for row in rows:
        tags.setdefault(row["dataset_id"], []).append(row["tag"])
    return tags
