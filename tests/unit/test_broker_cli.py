"""``fedward broker`` commands that need no running broker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.broker import cli as broker_cli
from fedward.errors import ConfigError, NotFound, TransportError


def peers_file(tmp_path: Path) -> Path:
    (tmp_path / "n1.pw").write_text("secret-n1\n")
    path = tmp_path / "peers.toml"
    path.write_text('[[peers]]\nrole = "node"\nid = "n1"\npassword_file = "n1.pw"\n')
    return path


def test_config_writes_the_three_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        broker_cli.broker,
        ["config", "--peers", str(peers_file(tmp_path)), "--out", str(out), "--port", "1999"],
    )
    assert result.exit_code == 0, result.output
    assert "1 peers" in result.output
    assert "listener 1999 127.0.0.1" in (out / "mosquitto.conf").read_text()
    assert "user n1" in (out / "acl").read_text()
    assert "secret-n1" not in result.output


def test_config_renders_max_connections_and_a_misspelt_option_names_the_right_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    base = ["config", "--peers", str(peers_file(tmp_path)), "--out", str(out)]
    result = CliRunner().invoke(broker_cli.broker, [*base, "--max-connections", "3000"])
    assert result.exit_code == 0, result.output
    assert "max_connections 3000" in (out / "mosquitto.conf").read_text()
    misspelt = CliRunner().invoke(broker_cli.broker, [*base, "--max-conections", "3000"])
    assert misspelt.exit_code == 2
    assert "--max-connections" in misspelt.output
    zero = CliRunner().invoke(broker_cli.broker, [*base, "--max-connections", "0"])
    assert zero.exit_code == 2


def test_run_without_mosquitto_points_to_the_embedded_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    CliRunner().invoke(
        broker_cli.broker, ["config", "--peers", str(peers_file(tmp_path)), "--out", str(out)]
    )
    monkeypatch.setattr(broker_cli, "find_mosquitto", lambda: None)
    result = CliRunner().invoke(broker_cli.broker, ["run", "--config-dir", str(out)])
    assert isinstance(result.exception, TransportError)
    assert "--embedded" in str(result.exception)


def test_run_without_a_rendered_directory_is_a_config_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(broker_cli.broker, ["run", "--config-dir", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)


def test_reload_needs_a_config_dir_or_a_pid_file() -> None:
    result = CliRunner().invoke(broker_cli.broker, ["reload"])
    assert result.exit_code == 2
    assert "--config-dir or --pid-file" in result.output


def test_reload_refuses_a_pid_file_naming_another_program(tmp_path: Path) -> None:
    pid_file = tmp_path / "broker.pid"
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        pid_file.write_text(f"{bystander.pid}\n")
        result = CliRunner().invoke(broker_cli.broker, ["reload", "--pid-file", str(pid_file)])
        assert isinstance(result.exception, NotFound)
        assert "not a broker" in str(result.exception)
        assert bystander.poll() is None  # and it got no SIGHUP
    finally:
        bystander.kill()
        bystander.wait()
