"""``fedward broker run`` follows its passwords file: a copied-in revocation takes effect
with no signal sent by anyone.

As on a real deployment where the files are made on another host: the new files are
rendered elsewhere and copied over the broker's with a plain (non-atomic) copy. The
revoked peer's open connection is dropped and its next CONNECT refused; the others stay.
The time from the copy to the refusal is printed (``benchmarks/broker_watch.py``
measures it repeatedly; target 5 s).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedward.broker.peers import BrokerPeer
from fedward.broker.process import free_port
from fedward.broker.render import render_broker_config
from fedward.config.model import BrokerEndpoint, Secret
from fedward.errors import AccessDenied, TransportError
from fedward.transport.mqtt import MqttChannel

PEERS = {"node1": "pw-node1-0123456789", "node2": "pw-node2-0123456789"}
DEADLINE_S = 30.0


def peers(*names: str) -> list[BrokerPeer]:
    return [BrokerPeer("node", name, Secret(PEERS[name])) for name in names]


def endpoint(port: int, name: str) -> BrokerEndpoint:
    return BrokerEndpoint("127.0.0.1", port, name, Secret(PEERS[name]))


def connect(port: int, name: str, client_id: str, timeout_s: float = 15.0) -> MqttChannel:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return MqttChannel(endpoint(port, name), client_id, connect_timeout_s=2)
        except (TransportError, AccessDenied):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def refused(port: int, name: str) -> bool:
    try:
        MqttChannel(endpoint(port, name), f"{name}-probe", connect_timeout_s=2).close()
    except AccessDenied:
        return True
    return False


@pytest.mark.parametrize("embedded", [False, True], ids=["mosquitto", "embedded"])
def test_a_copied_passwords_file_revokes_a_peer_without_a_signal(
    tmp_path: Path, embedded: bool
) -> None:
    port = free_port()
    live, elsewhere = tmp_path / "broker", tmp_path / "made-elsewhere"
    render_broker_config(peers("node1", "node2"), live, "127.0.0.1", port)
    command = [sys.executable, "-m", "fedward.cli", "broker", "run", "--config-dir", str(live)]
    broker = subprocess.Popen(
        [*command, *(["--embedded"] if embedded else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        staying = connect(port, "node1", "node1-a")
        revoked = connect(port, "node2", "node2-a")
        render_broker_config(peers("node1"), elsewhere, "127.0.0.1", port)

        started = time.monotonic()
        shutil.copyfile(elsewhere / "passwords", live / "passwords")
        shutil.copyfile(elsewhere / "acl", live / "acl")
        while not refused(port, "node2"):
            assert time.monotonic() - started < DEADLINE_S, "the revocation never took effect"
            time.sleep(0.05)
        refused_after = time.monotonic() - started
        while revoked.connected:
            assert time.monotonic() - started < DEADLINE_S, "the revoked peer stayed connected"
            time.sleep(0.05)
        kind = "embedded" if embedded else "mosquitto"
        print(f"revocation to refusal: {refused_after:.2f} s ({kind})")

        assert staying.connected
        assert not refused(port, "node1")
        revoked.close()
        staying.close()
    finally:
        broker.terminate()
        assert broker.wait(timeout=15) == 0
