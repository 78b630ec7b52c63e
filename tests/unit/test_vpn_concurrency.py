"""The lock around address allocation: concurrent genconf processes never share an address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fedward.vpn.enrolment import VpnServer
from fedward.vpn.peer_config import read_peer_config


def test_eight_concurrent_genconf_processes_get_eight_distinct_addresses(tmp_path: Path) -> None:
    root = tmp_path / "vpn"
    VpnServer(root).init({"VPN_SERVER_PUBLIC_ADDR": "192.0.2.1"})
    command = [sys.executable, "-m", "fedward.cli", "vpn", "--state-dir", str(root), "genconf"]
    processes = [
        subprocess.Popen([*command, "--with-key", "node", f"node{index}"], stderr=subprocess.PIPE)
        for index in range(8)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [p.returncode for p in processes] == [0] * 8, errors
    peers = [p for p in VpnServer(root).peers() if p.peer_type == "node"]
    assert len(peers) == 8
    assert len({p.address for p in peers}) == 8
    assert len({p.preshared_key for p in peers}) == 8
    written = {
        read_peer_config(root / "config_peers" / "node" / f"node{i}").address for i in range(8)
    }
    assert written == {p.address for p in peers}
    wg_config = (root / "wireguard" / "wg0.conf").read_text()
    assert wg_config.count("[Peer]") == 8 + 2  # and mqtt, restful
