"""A node database written before plan lineages gets them, filled from its own history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fedward.storage.sqlite_database import SqliteDatabase
from fedward.storage.sqlite_plans import SqlitePlanStore
from fedward.storage.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, schema_version, statements

_PLAN = (
    "INSERT INTO plans (plan_id, name, class_name, source, digest, kind, status, notes,"
    " decided_by, decided_at, created_at, researcher_id, previous_plan_id)"
    " VALUES (?, 'TumourLR', 'TumourLR', 'class TumourLR: pass', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_AUDIT = (
    "INSERT INTO audit_events (at, kind, actor, subject, detail)"
    " VALUES (?, 'plan_decision', ?, ?, ?)"
)


def version_1_database(path: Path) -> None:
    """What fedward wrote before: two requests, an admin's update, a retired version."""
    connection = sqlite3.connect(path)
    script = MIGRATIONS[1]
    assert isinstance(script, str)
    for statement in statements(script):
        connection.execute(statement)
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (1)")
    plans = [
        # v1: requested, approved by paula, then retired by alice's update (old behaviour).
        (
            "plan-a",
            "d1",
            "requested",
            "rejected",
            "superseded by plan-c",
            "alice",
            30,
            10,
            "researcher1",
            None,
        ),
        # v2: the researcher's next request: no link in the old schema.
        ("plan-b", "d2", "requested", "pending", "", None, None, 20, "researcher1", None),
        # v3: alice's update of v1, which copied the researcher and the kind.
        ("plan-c", "d3", "requested", "pending", "", None, None, 30, "researcher1", "plan-a"),
    ]
    connection.executemany(_PLAN, plans)
    connection.executemany(
        _AUDIT,
        [
            (10, "researcher1", "plan-a", "requested: TumourLR (TumourLR, requested) d1"),
            (15, "paula", "plan-a", "approved: TumourLR (TumourLR, requested) d1 notes: fine"),
            (20, "researcher1", "plan-b", "requested: TumourLR (TumourLR, requested) d2"),
            (30, "alice", "plan-c", "updated from plan-a: TumourLR (TumourLR, requested) d3"),
            (30, "alice", "plan-a", "retired: TumourLR (TumourLR, requested) d1"),
        ],
    )
    connection.commit()
    connection.close()


def test_old_plans_get_lineage_versions_authors_and_their_supersession(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    version_1_database(path)
    database = SqliteDatabase(path)
    try:
        with database.read() as connection:
            assert schema_version(connection) == SCHEMA_VERSION
        store = SqlitePlanStore(database)
        v1, v2, v3 = (store.get(plan_id) for plan_id in ("plan-a", "plan-b", "plan-c"))
        assert v1 is not None and v2 is not None and v3 is not None
        assert {v1.lineage_id, v2.lineage_id, v3.lineage_id} == {"plan-a"}
        assert [v1.version, v2.version, v3.version] == [1, 2, 3]
        assert (v1.created_by, v2.created_by, v3.created_by) == (
            "researcher1",
            "researcher1",
            "alice",
        )
        assert (v3.researcher_id, v3.kind) == (None, "registered")
        assert (v1.superseded_by, v1.review_state) == ("plan-c", "superseded")
        # The approval v1 had before alice's update retired it is back.
        assert (v1.decided_by, v1.notes) == ("paula", "fine")
    finally:
        database.close()
