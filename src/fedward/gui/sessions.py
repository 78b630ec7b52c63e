"""Sign-in sessions, kept on the server: the cookie holds only a random token.

The database stores the token's SHA-256, never the token, so a copy of ``gui.sqlite3``
does not let anyone sign in. A session ends on sign-out, after ``idle_timeout_s``
without a request, after ``max_age_s`` whatever happens, and at once when its user is
disabled or gets a new password. Each session carries its own CSRF token and a one-shot
"flash" message shown on the next page.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fedward.gui.account_database import AccountDatabase
from fedward.gui.roles import Role, validate_role

TOKEN_BYTES = 32
# Writing last_seen_at on every request would make every page view a write.
TOUCH_EVERY_S = 30.0


@dataclass(frozen=True)
class Session:
    username: str
    role: Role
    csrf_token: str
    created_at: float
    last_seen_at: float


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    def __init__(
        self,
        database: AccountDatabase,
        *,
        idle_timeout_s: float = 30 * 60,
        max_age_s: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self._clock = clock

    def open(self, username: str) -> str:
        """A new session for ``username``; returns the token for the cookie."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        with self._database.write() as connection:
            connection.execute(
                "DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
                (now - self.idle_timeout_s, now - self.max_age_s),
            )
            connection.execute(
                "INSERT INTO sessions (token_hash, username, csrf_token, created_at, last_seen_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (_token_hash(token), username, secrets.token_urlsafe(TOKEN_BYTES), now, now),
            )
        return token

    def find(self, token: str | None) -> Session | None:
        """The live session for ``token`` (and its user's current role), else ``None``."""
        if not token or len(token) > 200:
            return None
        key = _token_hash(token)
        now = self._clock()
        with self._database.read() as connection:
            row = connection.execute(
                "SELECT s.*, u.role, u.disabled FROM sessions s JOIN users u USING (username)"
                " WHERE s.token_hash = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        expired = (
            now - row["last_seen_at"] > self.idle_timeout_s
            or now - row["created_at"] > self.max_age_s
        )
        if expired or row["disabled"]:
            self.close(token)
            return None
        if now - row["last_seen_at"] > TOUCH_EVERY_S:
            with self._database.write() as connection:
                connection.execute(
                    "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (now, key)
                )
        return Session(
            username=row["username"],
            role=validate_role(row["role"]),
            csrf_token=row["csrf_token"],
            created_at=row["created_at"],
            last_seen_at=row["last_seen_at"],
        )

    def close(self, token: str) -> None:
        with self._database.write() as connection:
            connection.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    def set_flash(self, token: str, message: str) -> None:
        with self._database.write() as connection:
            connection.execute(
                "UPDATE sessions SET flash = ? WHERE token_hash = ?",
                (message[:2000], _token_hash(token)),
            )

    def pop_flash(self, token: str) -> str:
        key = _token_hash(token)
        with self._database.write() as connection:
            row = connection.execute(
                "SELECT flash FROM sessions WHERE token_hash = ?", (key,)
            ).fetchone()
            if row is None or not row["flash"]:
                return ""
            connection.execute("UPDATE sessions SET flash = '' WHERE token_hash = ?", (key,))
        return str(row["flash"])
