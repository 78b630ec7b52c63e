"""What a reviewer reads and compares: the canonical text of plan versions.

The digest binds the *normalised* source (``fedward.core.plan_digest.normalise_source``)
and that text is what runs, so review screens and diffs show it rather than the text as
the researcher typed it: a comment cannot hide a change, and a reformatted file shows
no change at all. The original text stays available as a secondary view.

Used by the node CLI (``fedward node plan diff``) and the GUI, so both show the same
diff for the same two versions.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from fedward.core.plan_digest import normalise_source
from fedward.errors import PlanError
from fedward.storage.node_records import PlanRecord

CONTEXT_LINES = 3


def canonical_source(record: PlanRecord) -> str:
    """The text that runs, ending with one newline; the stored text if it does not parse."""
    try:
        text = normalise_source(record.source)
    except PlanError:  # stored plans always parsed once; an old file may not any more
        text = record.source
    return text.rstrip("\n") + "\n"


def version_label(record: PlanRecord) -> str:
    return f"{record.name} v{record.version} ({record.review_state}) {record.plan_id}"


@dataclass(frozen=True)
class PlanDiff:
    """A unified diff of two versions' canonical text, and its size in lines."""

    base: PlanRecord
    record: PlanRecord
    lines: list[str]
    added: int
    removed: int

    @property
    def identical(self) -> bool:
        return self.added == 0 and self.removed == 0

    @property
    def text(self) -> str:
        return "".join(self.lines)


def unified_lines(old: str, new: str, old_label: str, new_label: str) -> list[str]:
    """``difflib`` unified diff lines, each ending with a newline."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=old_label,
        tofile=new_label,
        n=CONTEXT_LINES,
    )
    return [line if line.endswith("\n") else line + "\n" for line in lines]


def count_changes(lines: list[str]) -> tuple[int, int]:
    """``(added, removed)`` lines of a unified diff, headers excluded."""
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    return added, removed


def plan_diff(base: PlanRecord, record: PlanRecord) -> PlanDiff:
    """What changed from ``base`` to ``record``, in the text that runs."""
    lines = unified_lines(
        canonical_source(base),
        canonical_source(record),
        version_label(base),
        version_label(record),
    )
    added, removed = count_changes(lines)
    return PlanDiff(base, record, lines, added, removed)
