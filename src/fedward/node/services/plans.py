"""The training-plan registry: what code may run on this node's data.

A plan version is identified by the digest of its normalised source
(``fedward.core.plan_digest``); only an *approved* digest authorises training. Kinds:

- ``requested``: sent by a researcher for review; starts pending.
- ``registered``: added by the node admin; starts pending unless approved on the spot.
- ``default``: shipped with fedward; kept approved and in sync by ``sync_defaults``.

Versions form lineages (``lineage_id``, numbered by ``version``). A new version joins
a lineage when

- ``update`` makes it from a version (which is retired at once: an updated plan never
  keeps authorising old code);
- a researcher's ``request`` has the name of a plan they asked for before (the name of
  a requested plan is its class name), whoever wrote the versions in between;
- an administrator's ``register`` has the name of a plan written on the node.

A lineage has at most one approved version: approving one *supersedes* the approved
version before it, which becomes ``rejected`` with ``superseded_by`` set and keeps the
decision that was made about it (who approved it, when, with which notes). A reviewer
therefore compares a pending version with the one that runs now (``review_base``).
Every decision is written to the audit log, in the same transaction as the decision.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from fedward.core.ids import new_id, validate_id
from fedward.core.plan_digest import plan_digest
from fedward.errors import Conflict, NotFound, PlanError, ValidationError
from fedward.node.services.datasets import ADMIN
from fedward.node.services.free_text import checked_text
from fedward.storage.node_records import (
    PLAN_STATUSES,
    AuditEntry,
    PlanRecord,
    PlanStatus,
    PlanStatusOrUnknown,
    utc_now,
)
from fedward.storage.node_stores import PlanChange, PlanStore

# Who decides when no person does (default plans, retired versions).
SYSTEM = "system"
MAX_SOURCE_CHARS = 1 << 20
MAX_NOTES_CHARS = 20_000
MAX_NAME_CHARS = 200
# What ``review_base`` compares with, besides a plan id.
APPROVED = "approved"
PREVIOUS = "previous"


class PlanService:
    def __init__(
        self,
        store: PlanStore,
        digest_algorithm: str = "sha256",
        approval_required: bool = True,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        plan_digest("", digest_algorithm)  # refuse an unknown algorithm now, not at first use
        self._store = store
        self.digest_algorithm = digest_algorithm
        self.approval_required = approval_required
        self._clock = clock

    def digest(self, source: str) -> str:
        return plan_digest(source, self.digest_algorithm)

    # --- adding plans -------------------------------------------------------------

    def register(
        self,
        source: str,
        class_name: str,
        name: str,
        description: str = "",
        by: str = ADMIN,
        *,
        approve: bool = False,
    ) -> PlanRecord:
        digest = self._checked_plan(source, class_name)
        name = checked_text(name, "plan name", MAX_NAME_CHARS, required=True, one_line=True)
        now = self._clock()
        plan_id = new_id("plan")
        lineage_id, version, previous = self._continuation(name, None, plan_id)
        record = PlanRecord(
            plan_id=plan_id,
            name=name,
            class_name=class_name,
            source=source,
            digest=digest,
            kind="registered",
            status="approved" if approve else "pending",
            decided_by=by if approve else None,
            decided_at=now if approve else None,
            created_at=now,
            description=checked_text(description, "description", MAX_NOTES_CHARS),
            previous_plan_id=previous,
            lineage_id=lineage_id,
            version=version,
            created_by=by,
        )
        decision = "registered and approved" if approve else "registered"
        changes, audit = self._supersede_others(record, by) if approve else ([], [])
        self._store.commit(
            inserts=[record], changes=changes, audit=[self._audit(record, decision, by), *audit]
        )
        return record

    def update(self, plan_id: str, source: str, by: str = ADMIN) -> PlanRecord:
        old = self.get(plan_id)
        digest = self._checked_plan(source, old.class_name)
        if digest == old.digest:
            raise Conflict(
                f"plan {old.plan_id} already has this code (comments and layout do not count)"
            )
        now = self._clock()
        lineage = self._lineage_records(old)
        # The person updating wrote this version; nobody requested it.
        new = replace(
            old,
            plan_id=new_id("plan"),
            source=source,
            digest=digest,
            status="pending",
            notes="",
            decided_by=None,
            decided_at=None,
            created_at=now,
            kind="registered",
            researcher_id=None,
            previous_plan_id=old.plan_id,
            lineage_id=old.lineage_id or old.plan_id,
            version=max(r.version for r in lineage) + 1,
            created_by=by,
            superseded_by=None,
            superseded_at=None,
        )
        changes, audit = [], [self._audit(new, f"updated from {old.plan_id}", by)]
        if old.status != "rejected":  # a rejected version keeps its own rejection
            retired = self._superseded(old, new, now)
            changes.append(PlanChange(old, retired))
            audit.append(self._audit(retired, "retired", by, f"superseded by {new.plan_id}"))
        self._store.commit(inserts=[new], changes=changes, audit=audit)
        return new

    def request(
        self, source: str, class_name: str, description: str, researcher_id: str
    ) -> PlanRecord:
        """A researcher's request for review; a known digest returns its record as it is."""
        researcher_id = validate_id(researcher_id, kind="researcher id")
        digest = self._checked_plan(source, class_name)
        known = self._store.find_by_digest(digest)
        if known is not None:
            return known
        plan_id = new_id("plan")
        lineage_id, version, previous = self._continuation(class_name, researcher_id, plan_id)
        record = PlanRecord(
            plan_id=plan_id,
            name=class_name,
            class_name=class_name,
            source=source,
            digest=digest,
            kind="requested",
            status="pending",
            created_at=self._clock(),
            researcher_id=researcher_id,
            description=checked_text(description, "description", MAX_NOTES_CHARS),
            previous_plan_id=previous,
            lineage_id=lineage_id,
            version=version,
            created_by=researcher_id,
        )
        try:
            self._store.commit(
                inserts=[record], audit=[self._audit(record, "requested", researcher_id)]
            )
        except Conflict:
            # The same plan was requested at the same moment by someone else.
            known = self._store.find_by_digest(digest)
            if known is None:
                raise
            return known
        return record

    # --- decisions ----------------------------------------------------------------

    def approve(self, plan_id: str, by: str, notes: str = "") -> PlanRecord:
        return self._decide(plan_id, "approved", by, notes)

    def reject(self, plan_id: str, by: str, notes: str) -> PlanRecord:
        if not notes.strip():
            raise ValidationError(
                "rejecting a plan needs notes", hint="say why, the researcher will read them"
            )
        return self._decide(plan_id, "rejected", by, notes)

    def _decide(self, plan_id: str, status: PlanStatus, by: str, notes: str) -> PlanRecord:
        current = self.get(plan_id)
        if current.status == status:
            when = f" on {current.decided_at:%Y-%m-%d %H:%M} UTC" if current.decided_at else ""
            raise Conflict(
                f"plan {plan_id} is already {status} (by {current.decided_by or 'nobody'}{when})",
                hint="nothing was changed",
            )
        notes = checked_text(notes, "notes", MAX_NOTES_CHARS)
        decided = self._decided(current, status, by, notes, self._clock())
        changes, audit = [PlanChange(current, decided)], [self._audit(decided, status, by, notes)]
        if status == "approved":
            superseded, superseded_audit = self._supersede_others(decided, by)
            changes += superseded
            audit += superseded_audit
        self._store.commit(changes=changes, audit=audit)
        return decided

    def delete(self, plan_id: str, by: str = ADMIN) -> None:
        record = self.get(plan_id)
        if not self._store.delete(record.plan_id, self._audit(record, "deleted", by)):
            raise NotFound(f"no training plan with id {plan_id!r}")

    # --- reading ------------------------------------------------------------------

    def list(self, status: PlanStatus | None = None) -> list[PlanRecord]:
        if status is not None and status not in PLAN_STATUSES:
            raise ValidationError(
                f"unknown plan status {status!r}", hint="one of " + ", ".join(PLAN_STATUSES)
            )
        return self._store.list(status)

    def get(self, plan_id: str) -> PlanRecord:
        record = self._store.get(validate_id(plan_id, kind="plan id"))
        if record is None:
            raise NotFound(
                f"no training plan with id {plan_id!r}",
                hint="'fedward node plan list' shows them",
            )
        return record

    def find_by_digest(self, digest: str) -> PlanRecord | None:
        return self._store.find_by_digest(digest)

    def status_of(self, digest: str) -> tuple[PlanStatusOrUnknown, str]:
        """``(status, notes)`` of a digest; ``("unknown", "")`` for one never seen."""
        record = self._store.find_by_digest(digest)
        if record is None:
            return "unknown", ""
        if record.superseded_by is not None:
            return record.status, f"superseded by a newer version ({record.superseded_by})"
        return record.status, record.notes

    # --- lineages -----------------------------------------------------------------

    def lineage(self, plan_id: str) -> builtins.list[PlanRecord]:
        """Every version of ``plan_id``'s plan, version 1 first."""
        return self._lineage_records(self.get(plan_id))

    def approved_version(self, record: PlanRecord) -> PlanRecord | None:
        """The version of ``record``'s lineage that is approved now, if not ``record``."""
        approved = [
            r
            for r in self._lineage_records(record)
            if r.status == "approved" and r.plan_id != record.plan_id
        ]
        return approved[-1] if approved else None

    def review_base(self, record: PlanRecord, against: str = APPROVED) -> PlanRecord | None:
        """The version a reviewer compares ``record`` with; ``None`` if there is none.

        ``against`` is ``"approved"`` (the version approved now, else the previous one),
        ``"previous"`` (the version ``record`` follows) or a plan id.
        """
        if against == APPROVED:
            approved = self.approved_version(record)
            if approved is not None:
                return approved
            against = PREVIOUS
        if against == PREVIOUS:
            if record.previous_plan_id is None:
                return None
            return self._store.get(record.previous_plan_id)
        return self.get(against)

    # --- default plans ------------------------------------------------------------

    def sync_defaults(self, plans: Sequence[tuple[str, str, str]]) -> builtins.list[PlanRecord]:
        """Make the default plans match ``(name, source, class_name)``; returns them.

        New ones are added approved; a changed source replaces the stored one, approved;
        defaults no longer listed (or all of them, when default plans are disabled: pass
        an empty list) are rejected so they stop authorising. An admin's own rejection
        or approval of an unchanged default plan is kept.
        """
        now = self._clock()
        defaults = {r.name: r for r in self._store.list() if r.kind == "default"}
        inserts: list[PlanRecord] = []
        changes: dict[str, PlanChange] = {}
        wanted: dict[str, PlanRecord] = {}
        audit: list[AuditEntry] = []

        def change(before: PlanRecord, after: PlanRecord, decision: str) -> None:
            if after != before:
                changes[before.plan_id] = PlanChange(before, after)
                audit.append(self._audit(after, decision, SYSTEM, after.notes))

        for name, source, class_name in plans:
            digest = self._checked_plan(source, class_name)
            current = defaults.get(name)
            known = self._store.find_by_digest(digest)
            if known is not None and (current is None or known.plan_id != current.plan_id):
                # This exact code is already here under another record: make it the default.
                if current is not None:
                    change(
                        current, self._decided(current, "rejected", SYSTEM, _GONE, now), "retired"
                    )
                adopted = replace(known, kind="default", name=name, source=source)
                adopted = _approved_unless_admin_said_no(adopted, now)
                change(known, adopted, "adopted as default")
                wanted[name] = adopted
            elif current is None:
                plan_id = new_id("plan")
                record = PlanRecord(
                    plan_id=plan_id,
                    name=name,
                    class_name=class_name,
                    source=source,
                    digest=digest,
                    kind="default",
                    status="approved",
                    decided_by=SYSTEM,
                    decided_at=now,
                    created_at=now,
                    description="default plan shipped with fedward",
                    lineage_id=plan_id,
                    created_by=SYSTEM,
                )
                inserts.append(record)
                audit.append(self._audit(record, "default registered and approved", SYSTEM))
                wanted[name] = record
            else:
                updated = replace(current, source=source, class_name=class_name, digest=digest)
                if digest != current.digest:
                    updated = self._decided(updated, "approved", SYSTEM, "", now)
                updated = _approved_unless_admin_said_no(updated, now)
                change(current, updated, "default synchronised")
                wanted[name] = updated
        for name, current in defaults.items():
            if name not in wanted and current.status != "rejected":
                change(current, self._decided(current, "rejected", SYSTEM, _GONE, now), "retired")
        if inserts or changes:
            self._store.commit(inserts=inserts, changes=list(changes.values()), audit=audit)
        return list(wanted.values())

    def rehash(self) -> int:
        """Recompute stored digests with this service's algorithm (after a config change)."""
        changes = []
        for record in self._store.list():
            digest = self.digest(record.source)
            if digest != record.digest:
                changes.append(PlanChange(record, replace(record, digest=digest)))
        if changes:
            self._store.commit(changes=changes)
        return len(changes)

    # --- shared with default_plans --------------------------------------------------

    def _checked_plan(self, source: str, class_name: str) -> str:
        if not isinstance(source, str) or not source.strip():
            raise PlanError("training plan source is empty")
        if len(source) > MAX_SOURCE_CHARS:
            raise PlanError(f"training plan source is longer than {MAX_SOURCE_CHARS} characters")
        digest = self.digest(source)  # also refuses source that is not Python
        if not class_name.isidentifier() or class_name in dir(builtins):
            raise PlanError(f"invalid training plan class name {class_name!r}")
        defined = {node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}
        if class_name not in defined:
            raise PlanError(
                f"the source defines no top-level class {class_name!r}",
                hint="classes found: " + (", ".join(sorted(defined)) or "none"),
            )
        return digest

    def _decided(
        self, record: PlanRecord, status: PlanStatus, by: str, notes: str, at: datetime
    ) -> PlanRecord:
        return replace(
            record,
            status=status,
            decided_by=by,
            decided_at=at,
            notes=notes,
            superseded_by=None,
            superseded_at=None,
        )

    @staticmethod
    def _superseded(record: PlanRecord, successor: PlanRecord, at: datetime) -> PlanRecord:
        # Rejected so that it stops authorising; the decision about it stays as it was.
        return replace(record, status="rejected", superseded_by=successor.plan_id, superseded_at=at)

    def _supersede_others(
        self, approved: PlanRecord, by: str
    ) -> tuple[builtins.list[PlanChange], builtins.list[AuditEntry]]:
        """Retire the other approved versions of ``approved``'s lineage."""
        now = self._clock()
        changes, audit = [], []
        for other in self._lineage_records(approved):
            if other.plan_id != approved.plan_id and other.status == "approved":
                retired = self._superseded(other, approved, now)
                changes.append(PlanChange(other, retired))
                note = f"superseded by version {approved.version} ({approved.plan_id})"
                audit.append(self._audit(retired, "retired", by, note))
        return changes, audit

    def _lineage_records(self, record: PlanRecord) -> builtins.list[PlanRecord]:
        lineage_id = record.lineage_id or record.plan_id
        versions = [r for r in self._store.list() if (r.lineage_id or r.plan_id) == lineage_id]
        if all(r.plan_id != record.plan_id for r in versions):
            versions.append(record)  # not stored yet
        return sorted(versions, key=lambda r: (r.version, r.created_at))

    def _continuation(
        self, name: str, researcher_id: str | None, plan_id: str
    ) -> tuple[str, int, str | None]:
        """``(lineage_id, version, previous_plan_id)`` of a new version called ``name``.

        It continues the lineage of the newest version with that name from the same
        researcher (``None``: written on the node, default plans excepted), else it
        starts its own.
        """
        every = self._store.list()
        same = [
            r
            for r in every
            if r.name == name and r.researcher_id == researcher_id and r.kind != "default"
        ]
        if not same:
            return plan_id, 1, None
        lineage_id = same[-1].lineage_id or same[-1].plan_id
        lineage = [r for r in every if (r.lineage_id or r.plan_id) == lineage_id]
        newest = max(lineage, key=lambda r: (r.version, r.created_at))
        return lineage_id, newest.version + 1, newest.plan_id

    def _audit(self, record: PlanRecord, decision: str, actor: str, notes: str = "") -> AuditEntry:
        detail = f"{decision}: {record.name} ({record.class_name}, {record.kind}) {record.digest}"
        if notes:
            detail += f" notes: {notes}"
        return AuditEntry(
            at=self._clock(),
            kind="plan_decision",
            actor=actor,
            subject=record.plan_id,
            detail=detail,
        )


_GONE = "not among this node's default plans (removed, or default plans are disabled)"


def _approved_unless_admin_said_no(record: PlanRecord, now: datetime) -> PlanRecord:
    """Default plans are approved by the system, but a person's rejection stands."""
    if record.status == "approved":
        return record
    if record.status == "rejected" and record.decided_by not in (None, SYSTEM):
        return record
    if record.superseded_by is not None:  # a person replaced it with another version
        return record
    return replace(record, status="approved", decided_by=SYSTEM, decided_at=now, notes="")
