"""Our ``$7$`` hashes and Mosquitto's own tools agree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from fedward.broker.passwords import parse_password_file, verify_password
from fedward.broker.peers import BrokerPeer
from fedward.broker.process import MosquittoProcess, free_port
from fedward.broker.render import render_broker_config
from fedward.config.model import Secret
from fedward.transport.mqtt import MqttChannel


def test_hash_written_by_mosquitto_passwd_verifies_in_python(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    assert tool is not None, "mosquitto_passwd comes with the mosquitto package"
    password_file = tmp_path / "passwords"
    subprocess.run(
        [tool, "-c", "-b", str(password_file), "alice", "s3cret:with$odd chars"], check=True
    )

    encoded = parse_password_file(password_file.read_text())["alice"]

    assert encoded.startswith("$7$")
    assert verify_password("s3cret:with$odd chars", encoded)
    assert not verify_password("s3cret", encoded)


def test_mosquitto_accepts_python_hashes_of_any_iteration_count(tmp_path: Path) -> None:
    peers = [
        BrokerPeer("node", "node1", Secret("pw with spaces and ünïcode")),
        BrokerPeer("researcher", "res1", Secret("x" * 200)),
    ]
    for iterations in (101, 50_000):
        workdir = tmp_path / str(iterations)
        render_broker_config(peers, workdir, "127.0.0.1", free_port(), iterations=iterations)
        broker = MosquittoProcess(workdir)
        broker.start()
        try:
            for peer in peers:
                endpoint = broker.endpoint(peer.username, peer.password.reveal())
                MqttChannel(endpoint, f"{peer.username}-{iterations}").close()
        finally:
            broker.stop()
