"""Rendered config.env, server interface config and broker ACL match the golden files.

Set FEDWARD_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from fedward.vpn.enrolment import VpnServer
from fedward.vpn.keys import KeyPair, public_key_of

GOLDEN = Path(__file__).parent / "golden" / "vpn"


class CountingKeys:
    """Deterministic keys: the n-th key is derived from n, so renders are reproducible."""

    def __init__(self) -> None:
        self.count = 0

    def _next(self) -> str:
        self.count += 1
        digest = hashlib.sha256(f"fedward golden key {self.count}".encode()).digest()
        return base64.b64encode(digest).decode()

    def key_pair(self) -> KeyPair:
        private = self._next()  # wg clamps any 32 bytes into a private key, and so do we
        return KeyPair(private, public_key_of(private))

    def preshared_key(self) -> str:
        return self._next()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden") / "vpn"
    server = VpnServer(root, keys=CountingKeys())
    server.init({"VPN_SERVER_PUBLIC_ADDR": "vpn.example.org"})
    server.genconf("node", "node1", with_key=True)
    server.genconf("node", "node2")
    server.genconf("researcher", "researcher1", with_key=True)
    return root


CASES = {
    "node1.config.env": "config_peers/node/node1/config.env",
    "node2.config.env": "config_peers/node/node2/config.env",
    "researcher1.config.env": "config_peers/researcher/researcher1/config.env",
    "mqtt.config.env": "config_peers/management/mqtt/config.env",
    "server.config.env": "config.env",
    "wg0.conf": "wireguard/wg0.conf",
    "broker.acl": "config_peers/management/mqtt/broker/acl",
}


@pytest.mark.parametrize("golden_name", sorted(CASES))
def test_rendered_file_matches_golden(rendered: Path, golden_name: str) -> None:
    actual = (rendered / CASES[golden_name]).read_text()
    golden = GOLDEN / golden_name
    if os.environ.get("FEDWARD_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert actual == golden.read_text()
