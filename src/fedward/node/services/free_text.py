"""Free-text fields admins and researchers fill in (names, descriptions, notes)."""

from __future__ import annotations

from fedward.errors import ValidationError


def checked_text(
    value: object,
    what: str,
    limit: int,
    *,
    required: bool = False,
    error: type[ValidationError] = ValidationError,
) -> str:
    """``value`` stripped; ``error`` unless it is text of at most ``limit`` characters."""
    if not isinstance(value, str):
        raise error(f"{what} must be text")
    text = value.strip()
    if required and not text:
        raise error(f"{what} must not be empty")
    if len(text) > limit:
        raise error(f"{what} is longer than {limit} characters")
    return text
