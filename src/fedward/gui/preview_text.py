"""A dataset preview's facts in words: no ``True``, ``{}`` or ``['a', 'b']`` on a page.

The node's inspectors describe a dataset with JSON-like values (flags, counts per class,
lists of files); the GUI shows them as a person would write them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ITEMS = 20
MAX_CHARS = 500

# Keys the page shows elsewhere (the table, the thumbnails, the facts at the top).
SHOWN_ELSEWHERE = frozenset({"columns", "rows", "shape", "dtypes", "sample_count"})


def human_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, Mapping):
        if not value:
            return "none"
        items = [f"{key}: {human_value(inner)}" for key, inner in list(value.items())[:MAX_ITEMS]]
        more = len(value) - MAX_ITEMS
        return _cut(", ".join(items) + (f" and {more} more" if more > 0 else ""))
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            return "none"
        values = list(value)
        items = [human_value(inner) for inner in values[:MAX_ITEMS]]
        more = len(values) - MAX_ITEMS
        return _cut(", ".join(items) + (f" and {more} more" if more > 0 else ""))
    if isinstance(value, float):
        return f"{value:.6g}"
    return _cut(str(value))


def human_label(key: str) -> str:
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def preview_facts(preview: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` for each preview entry the page has no better place for."""
    return [
        (human_label(key), human_value(value))
        for key, value in preview.items()
        if key not in SHOWN_ELSEWHERE
    ]


def table_cell(value: Any) -> str:
    """A value of a previewed table row: empty for a missing one, numbers as written."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return human_value(value)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
