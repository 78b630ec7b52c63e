"""The node's security log: plan decisions, dataset changes, jobs, and what the GUI adds (logins).

Plan, dataset and job services write their entries themselves, in the same transaction
as the change they describe; ``record`` is for events that have no store of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fedward.errors import ValidationError
from fedward.storage.node_records import AuditEntry, AuditEvent, utc_now
from fedward.storage.node_stores import AuditStore

MAX_DETAIL_CHARS = 4_000


class AuditService:
    def __init__(self, store: AuditStore, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._store = store
        self._clock = clock

    def record(self, kind: str, actor: str, detail: str = "", subject: str = "") -> AuditEvent:
        """Append one event, e.g. ``record("login_failed", "alice", "from 127.0.0.1")``."""
        if not kind or not kind.replace("_", "").isalnum() or len(kind) > 64:
            raise ValidationError(f"invalid audit event kind {kind!r}", hint="use snake_case words")
        if not actor or len(actor) > 200:
            raise ValidationError("an audit event needs an actor of at most 200 characters")
        entry = AuditEntry(
            at=self._clock(),
            kind=kind,
            actor=actor,
            subject=subject[:200],
            detail=detail[:MAX_DETAIL_CHARS],
        )
        return self._store.record(entry)

    def list_events(
        self, limit: int = 100, kind: str | None = None, *, before_event_id: int | None = None
    ) -> list[AuditEvent]:
        """The most recent events (only ``kind`` when given), newest first.

        ``before_event_id`` pages back: pass the last ``event_id`` of a page to get the next.
        """
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        return self._store.list(limit, kind, before_event_id=before_event_id)
