"""``KEY=value`` files (the seed's ``config.env``): rendered safely, read strictly.

The seed sourced these files with a shell, so a hand-edited value could run commands. Here
values are never evaluated: a line is ``KEY=value`` (an ``export`` prefix is tolerated),
values must not need quoting, and every key must be known. A truncated file shows up as
missing keys; an edited one as an unknown key, a duplicate or a value that breaks a rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from fedward.errors import NotFound, ValidationError

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/+=@\[\]-]*$")


def render_env(values: Mapping[str, str], header: str = "") -> str:
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for key, value in values.items():
        if not _KEY.fullmatch(key) or not _SAFE_VALUE.fullmatch(value):
            raise ValidationError(f"cannot write {key}={value!r} to an env file")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def parse_env(
    text: str, *, source: str, required: Iterable[str], optional: Iterable[str] = ()
) -> dict[str, str]:
    """The values of an env file; ``ValidationError`` naming ``source`` on any irregularity."""
    required = list(required)
    allowed = set(required) | set(optional)
    values: dict[str, str] = {}
    hint = "restore the file from the server, or generate it again"
    if text and not text.endswith("\n"):
        raise ValidationError(f"{source} is truncated (its last line is incomplete)", hint=hint)
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise ValidationError(
                f"{source} line {number} is not KEY=value: {raw_line!r}", hint=hint
            )
        if key not in allowed:
            raise ValidationError(f"{source} line {number}: unknown key {key}", hint=hint)
        if key in values:
            raise ValidationError(f"{source} line {number}: {key} is set twice", hint=hint)
        if not _SAFE_VALUE.fullmatch(value):
            raise ValidationError(
                f"{source} line {number}: {key} has characters that are not allowed", hint=hint
            )
        values[key] = value
    missing = [key for key in required if key not in values]
    if missing:
        raise ValidationError(f"{source} lacks {', '.join(missing)} (truncated?)", hint=hint)
    return values


def read_env(
    path: Path, *, required: Iterable[str], optional: Iterable[str] = ()
) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from exc
    return parse_env(text, source=str(path), required=required, optional=optional)
