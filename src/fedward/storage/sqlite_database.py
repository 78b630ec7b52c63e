"""The node database: one SQLite file shared by the node daemon, the CLI and the GUI.

Connections, transactions, WAL and locking are :class:`fedward.sqlite_file.SqliteFile`'s;
this module adds the node's schema (:mod:`fedward.storage.sqlite_schema`), brought up to
date on open, and the epoch <-> datetime conversions the stores share.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fedward.sqlite_file import BUSY_TIMEOUT_MS, SqliteFile
from fedward.storage.sqlite_schema import migrate


class SqliteDatabase(SqliteFile):
    """A node database file: connections, transactions and the schema's version."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        super().__init__(path, what="node database", busy_timeout_ms=busy_timeout_ms)
        with self.write() as connection:
            migrate(connection)


def to_epoch(moment: datetime) -> float:
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def from_optional_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else from_epoch(seconds)
