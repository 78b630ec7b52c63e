"""The node database's schema, as a numbered list of migrations.

``migrate`` runs inside the opener's write transaction, so two processes opening a fresh
file at once cannot both apply a migration: the second waits for the lock, then sees the
version the first one wrote. Add a migration by appending to ``MIGRATIONS``; never edit
one that has shipped.

Lists and dicts (shape, dtypes, metrics) are JSON text; times are UTC epoch seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from fedward.errors import ConfigError
from fedward.storage.plan_lineage import add_plan_lineage

_V1 = """
CREATE TABLE datasets (
    dataset_id   TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    data_type    TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    path         TEXT NOT NULL,
    shape        TEXT NOT NULL DEFAULT '[]',
    dtypes       TEXT NOT NULL DEFAULT '{}',
    sample_count INTEGER NOT NULL CHECK (sample_count >= 0),
    created_at   REAL NOT NULL,
    options      TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE dataset_tags (
    dataset_id TEXT NOT NULL REFERENCES datasets (dataset_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    tag        TEXT NOT NULL,
    PRIMARY KEY (dataset_id, tag)
);
CREATE INDEX dataset_tags_by_tag ON dataset_tags (tag);

CREATE TABLE plans (
    plan_id          TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    class_name       TEXT NOT NULL,
    source           TEXT NOT NULL,
    digest           TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('requested', 'registered', 'default')),
    status           TEXT NOT NULL CHECK (status IN ('approved', 'pending', 'rejected')),
    notes            TEXT NOT NULL DEFAULT '',
    decided_by       TEXT,
    decided_at       REAL,
    created_at       REAL NOT NULL,
    researcher_id    TEXT,
    description      TEXT NOT NULL DEFAULT '',
    previous_plan_id TEXT
);
CREATE INDEX plans_by_status ON plans (status);

CREATE TABLE jobs (
    job_id        TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    round_index   INTEGER NOT NULL,
    researcher_id TEXT NOT NULL,
    dataset_id    TEXT NOT NULL,
    plan_digest   TEXT NOT NULL,
    started_at    REAL NOT NULL,
    finished_at   REAL,
    outcome       TEXT NOT NULL
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'killed', 'timeout')),
    message       TEXT NOT NULL DEFAULT '',
    metrics       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_by_start ON jobs (started_at);

CREATE TABLE audit_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at       REAL NOT NULL,
    kind     TEXT NOT NULL,
    actor    TEXT NOT NULL,
    subject  TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT ''
);
"""

# Paging through a large security log, filtered by kind, newest first.
_V3 = """
CREATE INDEX audit_events_by_kind ON audit_events (kind, event_id);
"""

Migration = str | Callable[[sqlite3.Connection], None]
# version -> migration; version N is reached by running every one up to N in order.
MIGRATIONS: dict[int, Migration] = {1: _V1, 2: add_plan_lineage, 3: _V3}
SCHEMA_VERSION = max(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    """The version recorded in the file; 0 for a file no fedward has written yet."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; the caller holds a write transaction."""
    current = schema_version(connection)
    if current > SCHEMA_VERSION:
        raise ConfigError(
            f"the node database is at schema version {current}, newer than this fedward "
            f"understands ({SCHEMA_VERSION})",
            hint="upgrade fedward, or point it at another state directory",
        )
    if current == 0:
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        migration = MIGRATIONS[version]
        if callable(migration):
            migration(connection)
        else:
            # executescript() would COMMIT our transaction first; run statement by statement.
            for statement in statements(migration):
                connection.execute(statement)
        connection.execute("DELETE FROM schema_version")
        connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    return SCHEMA_VERSION


def statements(script: str) -> list[str]:
    # The scripts above hold no ';' inside literals, so splitting on it is exact.
    return [part.strip() for part in script.split(";") if part.strip()]
