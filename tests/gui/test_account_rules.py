"""Account rules against a real GUI process over HTTP: guessable passwords are refused
(GUI and CLI), failed sign-ins slow the guessing address down but do not lock the real
user out from elsewhere, and changing one's password is throttled the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fedward.errors import ValidationError
from fedward.gui.account_database import AccountDatabase
from fedward.gui.accounts import AccountService
from fedward.gui.cli import gui

from .gui_process import (
    PASSWORDS,
    GuiProcess,
    add_user,
    client_from,
    hidden,
    sign_in,
    write_node_config,
)

COMMON_PASSWORDS = ("123456789012", "password1234", "qwertyuiop12", "hospital2024!")


@pytest.fixture(scope="module")
def running_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuiProcess]:
    workdir = tmp_path_factory.mktemp("gui-accounts")
    config = write_node_config(workdir / "state", workdir / "data")
    for username in ("alice", "paula", "victor"):
        add_user(config, username, "admin", PASSWORDS[username], workdir)
    gui = GuiProcess(config, workdir / "gui.log").start()
    try:
        yield gui
    finally:
        gui.stop()


def test_common_passwords_are_refused_by_the_account_service(tmp_path: Path) -> None:
    database = AccountDatabase(tmp_path / "gui.sqlite3")
    try:
        accounts = AccountService(database)
        for password in COMMON_PASSWORDS:
            with pytest.raises(ValidationError, match="too easy to guess"):
                accounts.create("carol", password, "viewer")
        assert accounts.create("carol", "amber-tundra-violin-58", "viewer").username == "carol"
    finally:
        database.close()


def test_adduser_refuses_a_common_password(tmp_path: Path) -> None:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    password_file = tmp_path / "password"
    password_file.write_text("123456789012\n")
    result = CliRunner().invoke(
        gui, ["adduser", "bob", "--config", str(config), "--password-file", str(password_file)]
    )
    assert isinstance(result.exception, ValidationError)
    assert "too easy to guess" in str(result.exception)


def test_the_users_page_refuses_a_common_password(running_gui: GuiProcess) -> None:
    with client_from(running_gui, "127.0.0.1") as client:
        assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 303
        users = client.get("/users")
        created = client.post(
            "/users",
            data={
                "csrf_token": hidden(users, "csrf_token"),
                "username": "dora",
                "role": "viewer",
                "password": "password1234",
                "password_again": "password1234",
            },
            follow_redirects=True,
        )
        assert "too easy to guess" in created.text
        assert "dora" not in client.get("/users").text


def test_three_failures_from_one_address_do_not_lock_the_user_out_from_another(
    running_gui: GuiProcess,
) -> None:
    with client_from(running_gui, "127.0.0.2") as attacker:
        for _ in range(3):
            assert sign_in(attacker, "paula", "guess-guess-guess").status_code == 401
        throttled = sign_in(attacker, "paula", "guess-again-guess")
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        # The right password from the guessing address is refused unchecked meanwhile.
        assert sign_in(attacker, "paula", PASSWORDS["paula"]).status_code == 429
    with client_from(running_gui, "127.0.0.3") as paula:
        assert sign_in(paula, "paula", PASSWORDS["paula"]).status_code == 303


def test_changing_ones_password_is_throttled(running_gui: GuiProcess) -> None:
    with client_from(running_gui, "127.0.0.4") as client:
        assert sign_in(client, "victor", PASSWORDS["victor"]).status_code == 303

        def change(current: str) -> httpx.Response:
            account = client.get("/account")
            return client.post(
                "/account/password",
                data={
                    "csrf_token": hidden(account, "csrf_token"),
                    "current_password": current,
                    "password": "lilac-quarry-bicycle-71",
                    "password_again": "lilac-quarry-bicycle-71",
                },
            )

        for _ in range(3):
            wrong = change("not-the-password")
            assert wrong.status_code == 303
            assert "current password is wrong" in client.get("/account").text
        assert change("still-not-it").status_code == 429
        refused = change(PASSWORDS["victor"])  # right, but not checked while throttled
        assert refused.status_code == 429
        assert "Too many wrong passwords" in refused.text
    with client_from(running_gui, "127.0.0.5") as elsewhere:
        assert sign_in(elsewhere, "victor", PASSWORDS["victor"]).status_code == 303
