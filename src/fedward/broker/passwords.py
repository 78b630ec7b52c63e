"""Mosquitto password files: ``username:$7$iterations$salt$hash`` lines.

``$7$`` is Mosquitto's PBKDF2-HMAC-SHA512 format (the default of ``mosquitto_passwd`` in
2.0): a 12-byte salt and a 64-byte key, both base64 with padding. Mosquitto reads the
iteration count from each line, so we can afford more than ``mosquitto_passwd``'s 101.
Mosquitto hashes on every CONNECT in its single thread, so the count is a trade-off
between brute-force cost and broker stalls during reconnect storms; fedward's broker
passwords are generated random secrets, where the count matters little.

The embedded broker checks passwords with :func:`verify_password` against the same file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping

from fedward.errors import ConfigError

DEFAULT_ITERATIONS = 20_000
SALT_BYTES = 12
KEY_BYTES = 64
_PREFIX = "$7$"

SaltSource = Callable[[int], bytes]
"""Returns that many random bytes; tests pass a fixed one to get golden files."""


def hash_password(
    password: str,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    salt_source: SaltSource = os.urandom,
) -> str:
    """The ``$7$...`` encoding of ``password`` (no username)."""
    if iterations < 1:
        raise ConfigError(f"password hash iterations must be positive, got {iterations}")
    salt = salt_source(SALT_BYTES)
    key = _derive(password, salt, iterations)
    return f"{_PREFIX}{iterations}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches a ``$7$`` encoding; False for any other format."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    iterations, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, iterations), key)


def hash_iterations(encoded: str) -> int | None:
    """The iteration count of a ``$7$`` encoding; None for any other format."""
    parsed = _parse(encoded)
    return parsed[0] if parsed is not None else None


def render_password_file(hashes: Mapping[str, str]) -> str:
    """One ``username:hash`` line per user, sorted by username."""
    for username in hashes:
        if ":" in username or "\n" in username:
            raise ConfigError(f"broker username {username!r} cannot contain ':' or a newline")
    return "".join(f"{username}:{hashes[username]}\n" for username in sorted(hashes))


def parse_password_file(text: str) -> dict[str, str]:
    """username -> encoded hash; ConfigError on a line that is not ``$7$``."""
    hashes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, encoded = line.partition(":")
        if not sep or _parse(encoded) is None:
            raise ConfigError(
                f"password file line {number} is not 'username:$7$...'",
                hint="re-render it with 'fedward broker config'",
            )
        hashes[username] = encoded
    return hashes


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, KEY_BYTES)


def _parse(encoded: str) -> tuple[int, bytes, bytes] | None:
    if not encoded.startswith(_PREFIX):
        return None
    fields = encoded[len(_PREFIX) :].split("$")
    if len(fields) != 3 or not fields[0].isdigit():
        return None
    try:
        salt = base64.b64decode(fields[1], validate=True)
        key = base64.b64decode(fields[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    iterations = int(fields[0])
    if iterations < 1 or not salt or len(key) != KEY_BYTES:
        return None
    return iterations, salt, key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
