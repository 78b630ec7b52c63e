"""Plain-text rendering for the node CLI: fields, times, shortened values.

Tables are :func:`fedward.text_table.render_table`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime


def render_fields(rows: Sequence[tuple[str, str]]) -> str:
    """``key:  value`` lines, aligned; empty values are left out."""
    return "\n".join(f"{key + ':':<13}{value}" for key, value in rows if value)


def when(moment: datetime | None) -> str:
    """Local time: what the admin's clock on the wall says."""
    if moment is None:
        return ""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
