"""Accounts and sessions on a real SQLite file: argon2 hashes, roles, disabling, expiry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from fedward.errors import AccessDenied, Conflict, ValidationError
from fedward.gui.account_database import AccountDatabase
from fedward.gui.accounts import AccountService
from fedward.gui.roles import Permission, allows
from fedward.gui.sessions import SessionStore

# Cheap parameters: these tests check behaviour, not cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "grey-falcon-meadow-17"


@pytest.fixture
def database(tmp_path: Path) -> AccountDatabase:
    db = AccountDatabase(tmp_path / "gui.sqlite3")
    yield db
    db.close()


@pytest.fixture
def accounts(database: AccountDatabase) -> AccountService:
    return AccountService(database, hasher=FAST_HASHER)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def stored_hashes(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as connection:
        return dict(connection.execute("SELECT username, password_hash FROM users"))


def test_passwords_are_stored_as_salted_argon2id_hashes(
    accounts: AccountService, database: AccountDatabase
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    accounts.create("bob", PASSWORD, "viewer")
    hashes = stored_hashes(database.path)
    assert all(h.startswith("$argon2id$") for h in hashes.values())
    assert PASSWORD not in "".join(hashes.values())
    assert hashes["alice"] != hashes["bob"]  # same password, different salt


def test_the_account_file_is_readable_by_its_owner_only(database: AccountDatabase) -> None:
    assert database.path.stat().st_mode & 0o077 == 0


def test_wrong_password_and_unknown_user_get_the_same_answer(accounts: AccountService) -> None:
    accounts.create("alice", PASSWORD, "admin")
    assert accounts.verify_login("alice", PASSWORD).role == "admin"
    with pytest.raises(AccessDenied) as wrong:
        accounts.verify_login("alice", "not-" + PASSWORD)
    with pytest.raises(AccessDenied) as unknown:
        accounts.verify_login("mallory", PASSWORD)
    assert str(wrong.value) == str(unknown.value) == "wrong user name or password"


def test_weak_passwords_and_bad_names_are_refused(accounts: AccountService) -> None:
    for password in ("short", "alice-has-a-long-one", "aaaaaaaaaaaaaaaa"):
        with pytest.raises(ValidationError):
            accounts.create("alice", password, "admin")
    for name in ("Alice", "a", "../x", "ali ce", ""):
        with pytest.raises(ValidationError):
            accounts.create(name, PASSWORD, "admin")
    with pytest.raises(ValidationError):
        accounts.create("alice", PASSWORD, "root")


def test_duplicate_user_is_a_conflict(accounts: AccountService) -> None:
    accounts.create("alice", PASSWORD, "admin")
    with pytest.raises(Conflict):
        accounts.create("alice", PASSWORD, "viewer")


def test_disabled_account_cannot_sign_in_and_loses_its_sessions(
    accounts: AccountService, database: AccountDatabase
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    accounts.create("bob", PASSWORD, "viewer")
    sessions = SessionStore(database)
    token = sessions.open("bob")
    accounts.set_disabled("bob", True)
    assert sessions.find(token) is None
    with pytest.raises(AccessDenied, match="disabled"):
        accounts.verify_login("bob", PASSWORD)
    accounts.set_disabled("bob", False)
    assert accounts.verify_login("bob", PASSWORD).username == "bob"


def test_the_last_enabled_admin_can_be_neither_demoted_nor_disabled(
    accounts: AccountService,
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    with pytest.raises(Conflict, match="last enabled administrator"):
        accounts.set_role("alice", "viewer")
    with pytest.raises(Conflict):
        accounts.set_disabled("alice", True)
    accounts.create("carol", PASSWORD, "admin")
    assert accounts.set_role("alice", "approver").role == "approver"


def test_new_password_closes_every_session_of_that_user(
    accounts: AccountService, database: AccountDatabase
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    sessions = SessionStore(database)
    token = sessions.open("alice")
    accounts.set_password("alice", "another-long-secret-9")
    assert sessions.find(token) is None
    with pytest.raises(AccessDenied):
        accounts.verify_login("alice", PASSWORD)


def test_session_tokens_are_stored_hashed_and_expire_when_idle(
    accounts: AccountService, database: AccountDatabase
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    clock = FakeClock()
    sessions = SessionStore(database, idle_timeout_s=600, max_age_s=3600, clock=clock)
    token = sessions.open("alice")
    with sqlite3.connect(database.path) as connection:
        stored = [row[0] for row in connection.execute("SELECT token_hash FROM sessions")]
    assert token not in stored
    found = sessions.find(token)
    assert found is not None and found.role == "admin" and found.csrf_token
    clock.now += 599
    assert sessions.find(token) is not None
    clock.now += 601
    assert sessions.find(token) is None


def test_sessions_end_at_their_maximum_age_even_when_used(
    accounts: AccountService, database: AccountDatabase
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    clock = FakeClock()
    sessions = SessionStore(database, idle_timeout_s=600, max_age_s=1800, clock=clock)
    token = sessions.open("alice")
    for _ in range(3):
        clock.now += 500
        assert sessions.find(token) is not None
    clock.now += 500
    assert sessions.find(token) is None


def test_a_role_change_applies_to_open_sessions(
    accounts: AccountService, database: AccountDatabase
) -> None:
    accounts.create("alice", PASSWORD, "admin")
    accounts.create("bob", PASSWORD, "approver")
    sessions = SessionStore(database)
    token = sessions.open("bob")
    accounts.set_role("bob", "viewer")
    found = sessions.find(token)
    assert found is not None and not allows(found.role, Permission.DECIDE_PLANS)


def test_flash_messages_are_shown_once(accounts: AccountService, database: AccountDatabase) -> None:
    accounts.create("alice", PASSWORD, "admin")
    sessions = SessionStore(database)
    token = sessions.open("alice")
    sessions.set_flash(token, "ok:saved")
    assert sessions.pop_flash(token) == "ok:saved"
    assert sessions.pop_flash(token) == ""


def test_roles_grow_from_viewer_to_admin() -> None:
    assert allows("viewer", Permission.VIEW)
    assert not allows("viewer", Permission.DECIDE_PLANS)
    assert allows("approver", Permission.DECIDE_PLANS)
    assert not allows("approver", Permission.MANAGE_USERS)
    assert not allows("approver", Permission.MANAGE_DATASETS)
    assert all(allows("admin", permission) for permission in Permission)
    assert not allows("nobody", Permission.VIEW)
