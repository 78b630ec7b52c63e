"""Free-text fields admins and researchers fill in (names, descriptions, notes)."""

from __future__ import annotations

import re

from fedward.core.messages import TEXT_CONTROLS
from fedward.errors import ValidationError

_CONTROL = re.compile(f"[{TEXT_CONTROLS}]")
_ONE_LINE_CONTROL = re.compile(f"[\\n\\r{TEXT_CONTROLS}]")


def checked_text(
    value: object,
    what: str,
    limit: int,
    *,
    required: bool = False,
    one_line: bool = False,
    error: type[ValidationError] = ValidationError,
) -> str:
    """``value`` stripped; ``error`` unless it is text of at most ``limit`` characters
    with no control character (but tab and, unless ``one_line``, line breaks): what the
    protocol carries to researchers, whose terminals must not obey it."""
    if not isinstance(value, str):
        raise error(f"{what} must be text")
    text = value.strip()
    if required and not text:
        raise error(f"{what} must not be empty")
    if len(text) > limit:
        raise error(f"{what} is longer than {limit} characters")
    control = (_ONE_LINE_CONTROL if one_line else _CONTROL).search(text)
    if control:
        raise error(
            f"{what} holds the control character {control.group()!r}",
            hint="remove it" + (" (one line only)" if one_line else ""),
        )
    return text
