"""The plans list as a reviewer reads it: one group per plan, its versions newest first.

Each pending version carries the version it should be compared with (the one approved
now in its lineage, else the one it follows), so the list links straight to that diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fedward.node.services import PlanRecord

REVIEW_STATES = ("pending", "approved", "superseded", "rejected")


@dataclass(frozen=True)
class PlanVersion:
    record: PlanRecord
    review_base: PlanRecord | None  # pending versions only


@dataclass
class PlanLineage:
    lineage_id: str
    versions: list[PlanVersion] = field(default_factory=list)  # newest first

    @property
    def newest(self) -> PlanRecord:
        return self.versions[0].record

    @property
    def requested_by(self) -> str:
        """The researchers who asked for versions of this plan, in order of first request."""
        seen: dict[str, None] = {}
        for version in reversed(self.versions):
            if version.record.researcher_id:
                seen[version.record.researcher_id] = None
        return ", ".join(seen)


def _key(record: PlanRecord) -> str:
    return record.lineage_id or record.plan_id


def group_by_lineage(records: Iterable[PlanRecord], state: str = "") -> list[PlanLineage]:
    """Lineages by name, their versions newest first; only versions in ``state`` if given."""
    by_lineage: dict[str, list[PlanRecord]] = {}
    for record in records:
        by_lineage.setdefault(_key(record), []).append(record)
    groups = []
    for lineage_id, members in by_lineage.items():
        members.sort(key=lambda r: (r.version, r.created_at), reverse=True)
        by_id = {r.plan_id: r for r in members}
        approved = next((r for r in members if r.status == "approved"), None)
        group = PlanLineage(lineage_id)
        for record in members:
            if state and record.review_state != state:
                continue
            base = None
            if record.status == "pending":
                base = approved or by_id.get(record.previous_plan_id or "")
            group.versions.append(PlanVersion(record, base))
        if group.versions:
            groups.append(group)
    groups.sort(key=lambda g: (g.newest.name.lower(), g.lineage_id))
    return groups
