"""GUI user accounts: argon2id password hashes, roles, disabling. No default account exists.

The first administrator is created from the command line (``fedward gui adduser NAME
--admin``), by someone who can already read the node's state directory. Passwords are
hashed with argon2id (salted, memory-hard, parameters from argon2-cffi's RFC 9106 low-
memory profile) and re-hashed on sign-in when those parameters change. New passwords
must pass ``password_strength`` (length, not the user name, zxcvbn's guessability).

``verify_login`` costs one argon2 verification whether or not the user exists, so the
time a failed sign-in takes does not say which user names are real.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fedward.errors import AccessDenied, Conflict, NotFound, ValidationError
from fedward.gui.account_database import AccountDatabase
from fedward.gui.password_strength import check_password_strength
from fedward.gui.roles import Role, validate_role

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    disabled: bool
    created_at: datetime
    password_changed_at: datetime


def validate_username(value: object) -> str:
    if not isinstance(value, str) or not USERNAME_PATTERN.fullmatch(value):
        raise ValidationError(
            f"invalid user name {value!r}",
            hint="2 to 64 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter",
        )
    return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AccountService:
    def __init__(
        self,
        database: AccountDatabase,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._database = database
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        # Verified against when the user does not exist, to spend the same time.
        self._decoy_hash = self._hasher.hash("fedward-decoy-password")

    def create(self, username: str, password: str, role: str) -> Account:
        username = validate_username(username)
        checked_role = validate_role(role)
        check_password_strength(password, username)
        password_hash = self._hasher.hash(password)
        now = self._clock().timestamp()
        with self._database.write() as connection:
            if connection.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise Conflict(f"user {username!r} already exists", hint="choose another name")
            connection.execute(
                "INSERT INTO users (username, password_hash, role, disabled, created_at,"
                " password_changed_at) VALUES (?, ?, ?, 0, ?, ?)",
                (username, password_hash, checked_role, now, now),
            )
        return self.get(username)

    def get(self, username: str) -> Account:
        with self._database.read() as connection:
            row = connection.execute(
                "SELECT * FROM users WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no user named {username!r}")
        return _account(row)

    def list(self) -> list[Account]:
        with self._database.read() as connection:
            rows = connection.execute("SELECT * FROM users ORDER BY username").fetchall()
        return [_account(row) for row in rows]

    def verify_login(self, username: str, password: str) -> Account:
        """The account if the password is right and the account enabled; else AccessDenied."""
        with self._database.read() as connection:
            row = connection.execute(
                "SELECT * FROM users WHERE username = ?", (username,)
            ).fetchone()
        stored = row["password_hash"] if row is not None else self._decoy_hash
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise AccessDenied("wrong user name or password") from None
        if row is None:
            raise AccessDenied("wrong user name or password")
        if row["disabled"]:
            raise AccessDenied("this account is disabled", hint="ask an administrator")
        if self._hasher.check_needs_rehash(stored):
            self._store_hash(username, self._hasher.hash(password), changed=False)
        return _account(row)

    def set_password(self, username: str, password: str) -> Account:
        account = self.get(username)
        check_password_strength(password, account.username)
        self._store_hash(account.username, self._hasher.hash(password), changed=True)
        return self.get(username)

    def set_role(self, username: str, role: str) -> Account:
        checked_role = validate_role(role)
        with self._database.write() as connection:
            current = self._row_for_update(connection, username)
            if current["role"] == "admin" and checked_role != "admin":
                _refuse_last_admin(connection, username)
            connection.execute(
                "UPDATE users SET role = ? WHERE username = ?", (checked_role, username)
            )
        return self.get(username)

    def set_disabled(self, username: str, disabled: bool) -> Account:
        with self._database.write() as connection:
            current = self._row_for_update(connection, username)
            if disabled and current["role"] == "admin":
                _refuse_last_admin(connection, username)
            connection.execute(
                "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
            )
            if disabled:
                # A disabled account loses its open sessions at once, not at their expiry.
                connection.execute("DELETE FROM sessions WHERE username = ?", (username,))
        return self.get(username)

    def _store_hash(self, username: str, password_hash: str, *, changed: bool) -> None:
        with self._database.write() as connection:
            self._row_for_update(connection, username)
            if changed:
                connection.execute(
                    "UPDATE users SET password_hash = ?, password_changed_at = ? "
                    "WHERE username = ?",
                    (password_hash, self._clock().timestamp(), username),
                )
                connection.execute("DELETE FROM sessions WHERE username = ?", (username,))
            else:
                connection.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (password_hash, username),
                )

    @staticmethod
    def _row_for_update(connection: sqlite3.Connection, username: str) -> sqlite3.Row:
        row: sqlite3.Row | None = connection.execute(
            "SELECT * FROM users WHERE username = ?", (username,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no user named {username!r}")
        return row


def _refuse_last_admin(connection: sqlite3.Connection, username: str) -> None:
    row = connection.execute(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND username != ?",
        (username,),
    ).fetchone()
    if int(row[0]) == 0:
        raise Conflict(
            f"{username!r} is the last enabled administrator",
            hint="make another user admin first, or nobody could manage users",
        )


def _account(row: sqlite3.Row) -> Account:
    return Account(
        username=row["username"],
        role=validate_role(row["role"]),
        disabled=bool(row["disabled"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        password_changed_at=datetime.fromtimestamp(row["password_changed_at"], UTC),
    )
