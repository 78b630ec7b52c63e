"""``fedward gui`` command line and server settings: loopback by default, no plain http
on the network, no default account, GUI_HOST honoured."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.errors import ConfigError
from fedward.gui.account_database import AccountDatabase
from fedward.gui.accounts import AccountService
from fedward.gui.cli import gui
from fedward.gui.settings import GuiSettings
from fedward.node.services import open_node_services

from .gui_process import write_node_config


def test_default_address_is_loopback_port_8484() -> None:
    settings = GuiSettings()
    assert (settings.host, settings.port, settings.tls) == ("127.0.0.1", 8484, False)


def test_non_loopback_address_without_tls_is_refused() -> None:
    with pytest.raises(ConfigError, match="without TLS"):
        GuiSettings(host="0.0.0.0")
    assert GuiSettings(host="0.0.0.0", allow_plain_http=True).host == "0.0.0.0"
    assert GuiSettings(host="::1").host == "::1"


def test_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="both"):
        GuiSettings(certfile=cert)
    with pytest.raises(ConfigError, match="does not exist"):
        GuiSettings(certfile=cert, keyfile=tmp_path / "missing.pem")


def test_serve_reads_gui_host_from_the_environment(tmp_path: Path) -> None:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    result = CliRunner().invoke(
        gui, ["serve", "--config", str(config)], env={"GUI_HOST": "192.0.2.10"}
    )
    assert isinstance(result.exception, ConfigError)
    assert "192.0.2.10" in str(result.exception)


def test_adduser_prompts_for_the_password_twice_and_logs_the_creation(tmp_path: Path) -> None:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    password = "violet-harbour-engine-4"
    result = CliRunner().invoke(
        gui,
        ["adduser", "alice", "--admin", "--config", str(config)],
        input=f"{password}\n{password}\n",
        env={"NODE_ID": ""},
    )
    assert result.exit_code == 0, result.output
    assert "created GUI user alice (admin)" in result.output
    database = AccountDatabase(tmp_path / "state" / "gui.sqlite3")
    try:
        assert AccountService(database).verify_login("alice", password).role == "admin"
    finally:
        database.close()
    services = open_node_services(tmp_path / "state" / "node.sqlite3", tmp_path / "data")
    try:
        events = services.audit.list_events(kind="user_created")
        assert [(e.actor, e.subject) for e in events] == [("cli", "alice")]
    finally:
        services.close()


def test_adduser_refuses_contradicting_roles_and_weak_passwords(tmp_path: Path) -> None:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    runner = CliRunner()
    contradicting = runner.invoke(
        gui,
        [
            "adduser",
            "bob",
            "--admin",
            "--role",
            "viewer",
            "--config",
            str(config),
            "--password-file",
            str(weak),
        ],
    )
    assert contradicting.exit_code != 0
    refused = runner.invoke(
        gui, ["adduser", "bob", "--config", str(config), "--password-file", str(weak)]
    )
    assert "at least 12 characters" in str(refused.exception)


def test_there_is_no_default_account(tmp_path: Path) -> None:
    database = AccountDatabase(tmp_path / "gui.sqlite3")
    try:
        assert AccountService(database).list() == []
    finally:
        database.close()
