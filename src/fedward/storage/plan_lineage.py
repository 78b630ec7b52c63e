"""Schema migration 2: plan versions get a lineage, a number, an author and a successor.

Before it, a plan version knew only its ``previous_plan_id`` (set by an update in the GUI
or CLI), a researcher's new version of a plan had no link at all, an update copied the
old version's ``researcher_id`` (so an administrator's text read "requested by" the
researcher), and a retired version lost the decision made about it (its ``decided_by``
became whoever updated it). The new columns are filled from what the file already
holds:

- ``lineage_id``: the lineage of the version it follows, else of the newest earlier
  version with the same name asked for by the same researcher, else its own id;
- ``version``: 1, 2, 3... in order of creation within the lineage;
- ``created_by``: the actor of the plan's first audit entry (requested, registered,
  updated); failing that, the researcher for a request and ``system`` for a default;
- a version made by an update loses the ``researcher_id`` (and ``requested`` kind) it
  had copied: the person who updated it wrote it;
- a version retired as ``superseded by plan-…`` gets ``superseded_by``/``superseded_at``
  and, from the audit log, the approval it had before (or none if it was pending).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

_COLUMNS = (
    "ALTER TABLE plans ADD COLUMN lineage_id TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE plans ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE plans ADD COLUMN created_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE plans ADD COLUMN superseded_by TEXT",
    "ALTER TABLE plans ADD COLUMN superseded_at REAL",
    "CREATE INDEX plans_by_lineage ON plans (lineage_id, version)",
)
_CREATION_DECISIONS = ("requested", "registered", "updated from", "default registered")
_SUPERSEDED_PREFIX = "superseded by "


@dataclass
class _Decision:
    actor: str
    at: float
    notes: str


def add_plan_lineage(connection: sqlite3.Connection) -> None:
    for statement in _COLUMNS:
        connection.execute(statement)
    creators, updated, approvals = _read_plan_audit(connection)
    rows = connection.execute(
        "SELECT plan_id, name, kind, status, notes, decided_by, decided_at, researcher_id,"
        " previous_plan_id FROM plans ORDER BY created_at, plan_id"
    ).fetchall()
    lineage_of: dict[str, str] = {}
    newest_by_name: dict[tuple[str, str | None], str] = {}
    versions: dict[str, int] = {}
    for row in rows:
        plan_id = row["plan_id"]
        was_update = plan_id in updated
        researcher_id = None if was_update else row["researcher_id"]
        kind = "registered" if was_update and row["kind"] == "requested" else row["kind"]
        previous = row["previous_plan_id"]
        key = (row["name"], researcher_id)
        if previous in lineage_of:
            lineage = lineage_of[previous]
        else:
            lineage = newest_by_name.get(key, plan_id)
        lineage_of[plan_id] = lineage
        newest_by_name[key] = lineage
        versions[lineage] = versions.get(lineage, 0) + 1
        created_by = creators.get(plan_id) or (
            researcher_id if kind == "requested" else "system" if kind == "default" else ""
        )
        decision = (row["decided_by"], row["decided_at"], row["notes"])
        superseded_by, superseded_at = None, None
        if row["status"] == "rejected" and row["notes"].startswith(_SUPERSEDED_PREFIX):
            superseded_by = row["notes"][len(_SUPERSEDED_PREFIX) :].split()[0]
            superseded_at = row["decided_at"]
            approval = approvals.get(plan_id)
            decision = (
                (approval.actor, approval.at, approval.notes) if approval else (None, None, "")
            )
        connection.execute(
            "UPDATE plans SET lineage_id = ?, version = ?, created_by = ?, researcher_id = ?,"
            " kind = ?, superseded_by = ?, superseded_at = ?, decided_by = ?, decided_at = ?,"
            " notes = ? WHERE plan_id = ?",
            (
                lineage,
                versions[lineage],
                created_by or "",
                researcher_id,
                kind,
                superseded_by,
                superseded_at,
                *decision,
                plan_id,
            ),
        )


def _read_plan_audit(
    connection: sqlite3.Connection,
) -> tuple[dict[str, str], set[str], dict[str, _Decision]]:
    """Per plan id: who created it, whether an update did, and its last approval."""
    creators: dict[str, str] = {}
    updated: set[str] = set()
    approvals: dict[str, _Decision] = {}
    events = connection.execute(
        "SELECT subject, actor, at, detail FROM audit_events WHERE kind = 'plan_decision'"
        " ORDER BY event_id"
    )
    for subject, actor, at, detail in events:
        decision = detail.partition(":")[0]
        if subject not in creators and decision.startswith(_CREATION_DECISIONS):
            creators[subject] = actor
            if decision.startswith("updated from"):
                updated.add(subject)
        if decision in ("approved", "registered and approved"):
            _, _, notes = detail.partition(" notes: ")
            approvals[subject] = _Decision(actor, at, notes)
    return creators, updated, approvals
