"""DNS rebinding: a page on another site that makes its name resolve to the GUI's address
still sends its own name as Host. The real GUI answers only to its own names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fedward.errors import ConfigError
from fedward.gui.cli import gui as gui_command
from fedward.gui.settings import GuiSettings

from .gui_process import GuiProcess, write_node_config


@pytest.fixture(scope="module")
def running_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuiProcess]:
    workdir = tmp_path_factory.mktemp("gui-hosts")
    config = write_node_config(workdir / "state", workdir / "data")
    gui = GuiProcess(
        config, workdir / "gui.log", extra_args=["--allowed-host", "gui.hospital.example"]
    ).start()
    try:
        yield gui
    finally:
        gui.stop()


def status_with_host(gui: GuiProcess, host: str) -> int:
    with httpx.Client(base_url=gui.url, timeout=30) as client:
        return client.get("/login", headers={"Host": host}).status_code


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:{port}", "127.0.0.1.attacker.example", ""]
)
def test_a_request_for_another_host_name_is_refused(running_gui: GuiProcess, host: str) -> None:
    assert status_with_host(running_gui, host.format(port=running_gui.port)) == 400


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST",
        "[::1]:{port}",
        "gui.hospital.example:{port}",
        "10.221.0.5:{port}",  # an address: a browser that sends it connected to it
    ],
)
def test_the_gui_answers_to_its_own_names_and_to_addresses(
    running_gui: GuiProcess, host: str
) -> None:
    assert status_with_host(running_gui, host.format(port=running_gui.port)) == 200


def test_allowed_hosts_are_host_names_only() -> None:
    for wrong in ("https://gui.example", "gui.example:8484", "gui example", "*", "", "a/b"):
        with pytest.raises(ConfigError, match="allowed host"):
            GuiSettings(allowed_hosts=(wrong,))
    on_address = GuiSettings(host="127.0.0.2", allowed_hosts=("GUI.Hospital.example",))
    assert on_address.trusted_host_names == ("localhost", "gui.hospital.example")
    on_name = GuiSettings(host="localhost", allowed_hosts=("gui.hospital.example",))
    assert on_name.trusted_host_names == ("localhost", "gui.hospital.example")


def test_a_mistyped_allowed_host_option_names_the_right_one(tmp_path: Path) -> None:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    result = CliRunner().invoke(
        gui_command, ["serve", "--config", str(config), "--alowed-host", "gui.example"]
    )
    assert result.exit_code == 2
    assert "No such option '--alowed-host'" in result.output
    assert "Did you mean" in result.output and "'--allowed-host'" in result.output
