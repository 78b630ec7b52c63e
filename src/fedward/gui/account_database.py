"""The GUI's own SQLite file: user accounts and sign-in sessions.

Why a separate file (``gui.sqlite3`` next to the node database) and not more tables in
the node's: the node daemon never needs password hashes, so they stay out of the file
the daemon, its job workers and the node CLI open; the node schema keeps one owner and
one migration history; and the layering rule keeps ``fedward.gui`` off
``fedward.storage``. The login, approval and user-management *events* still go to the
node's security log through ``AuditService``, so there is one log to read.

Like the node database (same :class:`~fedward.sqlite_file.SqliteFile`): WAL journal, a
busy timeout, ``BEGIN IMMEDIATE`` for writes, one connection per thread, and a file
created with mode 0600.
"""

from __future__ import annotations

from pathlib import Path

from fedward.errors import ConfigError
from fedward.sqlite_file import BUSY_TIMEOUT_MS, SqliteFile

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    password_changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    flash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(username);
"""


class AccountDatabase(SqliteFile):
    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        super().__init__(path, what="GUI account database", busy_timeout_ms=busy_timeout_ms)
        with self.write() as connection:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} was written by a newer fedward (schema {version})",
                    hint="upgrade fedward",
                )
            # Statement by statement: executescript would commit the open transaction first.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
