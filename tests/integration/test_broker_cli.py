"""``fedward broker config | run | reload`` as an operator would use them."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedward.broker.process import free_port
from fedward.broker.render import BrokerFiles
from fedward.broker.run_as import remove_copy
from fedward.config.model import BrokerEndpoint, Secret
from fedward.errors import AccessDenied, TransportError
from fedward.transport.mqtt import MqttChannel


def fedward(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedward.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_peers(directory: Path, peers: dict[str, str]) -> Path:
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    tables = []
    for peer_id, role in peers.items():
        (secrets / f"{peer_id}.password").write_text(f"pw-{peer_id}\n")
        tables.append(
            f'[[peers]]\nrole = "{role}"\nid = "{peer_id}"\n'
            f'password_file = "secrets/{peer_id}.password"\n'
        )
    peers_file = directory / "peers.toml"
    peers_file.write_text("\n".join(tables))
    return peers_file


def connect_when_ready(port: int, peer_id: str, timeout_s: float = 60.0) -> MqttChannel:
    endpoint = BrokerEndpoint("127.0.0.1", port, peer_id, Secret(f"pw-{peer_id}"))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return MqttChannel(endpoint, f"{peer_id}-cli", connect_timeout_s=2)
        except (TransportError, AccessDenied):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("embedded", [False, True], ids=["mosquitto", "embedded"])
def test_operator_renders_runs_and_reloads_the_broker(tmp_path: Path, embedded: bool) -> None:
    port = free_port()
    out = tmp_path / "broker"
    peers_file = write_peers(tmp_path, {"node1": "node", "res1": "researcher"})
    rendered = fedward(
        "broker", "config", "--peers", str(peers_file), "--out", str(out), "--port", str(port)
    )
    assert rendered.returncode == 0, rendered.stderr
    assert (out / "passwords").stat().st_mode & 0o777 == 0o600
    assert "pw-node1" not in (out / "passwords").read_text()

    run_args = ["broker", "run", "--config-dir", str(out), *(["--embedded"] if embedded else [])]
    broker = subprocess.Popen(
        [sys.executable, "-m", "fedward.cli", *run_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connect_when_ready(port, "node1").close()
        assert int((out / "broker.pid").read_text()) == broker.pid
        with pytest.raises(AccessDenied):
            MqttChannel(BrokerEndpoint("127.0.0.1", port, "node2", Secret("pw-node2")), "early")

        write_peers(tmp_path, {"node1": "node", "node2": "node", "res1": "researcher"})
        assert (
            fedward(
                "broker",
                "config",
                "--peers",
                str(peers_file),
                "--out",
                str(out),
                "--port",
                str(port),
            ).returncode
            == 0
        )
        reloaded = fedward("broker", "reload", "--config-dir", str(out))
        assert reloaded.returncode == 0, reloaded.stderr
        if not embedded and os.geteuid() == 0:
            # Rendered and started by root, Mosquitto runs as its own account.
            assert "user mosquitto\n" in (out / "mosquitto.conf").read_text()
            # `broker run` supervises Mosquitto (it follows its files): the child drops root.
            (mosquitto,) = _children_of(broker.pid)
            assert _uid_of(mosquitto) == pwd.getpwnam("mosquitto").pw_uid

        connect_when_ready(port, "node2").close()
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        remove_copy(BrokerFiles.in_dir(out))


def _children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("Uid:")]
    return int(line.split()[1])


def test_reload_without_a_running_broker_says_so(tmp_path: Path) -> None:
    (tmp_path / "broker.pid").write_text(f"{2**22 + 12345}\n")
    result = fedward("broker", "reload", "--config-dir", str(tmp_path))
    assert result.returncode != 0
    assert "no broker runs" in result.stderr


def test_run_without_rendered_config_explains_what_to_do(tmp_path: Path) -> None:
    result = fedward("broker", "run", "--config-dir", str(tmp_path / "nothing"))
    assert result.returncode != 0
    assert "fedward broker config" in result.stderr
