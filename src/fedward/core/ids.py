"""Identifier rules.

Ids become MQTT topic levels, broker usernames, file names and SQL keys, so they are
restricted to a small alphabet and length everywhere (the seed let ``../x`` through). They
never start with ``-``: an id is also a command-line argument (``fedward vpn remove node ID``),
where ``-x`` would read as an option.
"""

from __future__ import annotations

import re
import secrets

from fedward.errors import ValidationError

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def validate_id(value: object, *, kind: str = "id") -> str:
    """Return ``value`` if it is a valid id: 1 to 64 letters, digits, ``_``, ``-``; no
    leading ``-``."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValidationError(
            f"invalid {kind} {value!r}",
            hint="use 1 to 64 letters, digits, '_' or '-', not starting with '-'",
        )
    return value


def validate_sha256(value: object, *, kind: str = "blob id") -> str:
    """Return ``value`` if it is a lowercase hex sha256 digest."""
    if not isinstance(value, str) or not SHA256_PATTERN.fullmatch(value):
        raise ValidationError(f"invalid {kind} {value!r}", hint="expected 64 lowercase hex digits")
    return value


def new_id(prefix: str) -> str:
    """A fresh random id such as ``exp-3f9a1c2b7d4e``; the prefix must itself be valid."""
    return validate_id(f"{prefix}-{secrets.token_hex(6)}")
