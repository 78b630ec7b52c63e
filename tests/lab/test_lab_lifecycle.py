"""``lab down`` removes everything, also after a failed ``up``; revocation in a live lab."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_harness import Lab, leftovers

from fedward.lab.deploy import BROKER, VPN_SERVER_ADDRESS, lab_down, lab_up, vpn_dir
from fedward.lab.netns import fedward_command
from fedward.lab.state import LabState
from fedward.vpn.status import interface_status

pytestmark = pytest.mark.root


class InjectedFailureError(Exception):
    pass


def test_down_after_a_failed_up_removes_everything(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"

    def fail_at_services(step: str) -> None:
        if step == "services":
            raise InjectedFailureError

    with pytest.raises(InjectedFailureError):
        lab_up(lab_dir, 2, progress=fail_at_services)
    state = LabState.load(lab_dir)
    assert state.namespaces and state.tunnels and not state.ready
    assert leftovers(state.topology.prefix, lab_dir)  # there was something to clean
    assert lab_down(lab_dir) == []
    assert leftovers(state.topology.prefix, lab_dir) == []
    assert not lab_dir.exists()


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab_dir = tmp_path_factory.mktemp("small") / "lab"
    try:
        yield Lab(lab_up(lab_dir, 2))
    finally:
        state = LabState.load(lab_dir)
        assert lab_down(lab_dir) == []
        assert leftovers(state.topology.prefix, lab_dir) == []


def _revoke(lab: Lab, peer_type: str, peer_id: str) -> str:
    state_dir = str(vpn_dir(lab.state))
    command = fedward_command("vpn", "--state-dir", state_dir, "revoke", peer_type, peer_id)
    done = lab.run("vpnserver", *command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_revoked_node_loses_the_vpn_the_broker_and_the_upload_server(small_lab: Lab) -> None:
    lab = small_lab
    blob_id = str(lab.probe("researcher", "blob-put", "node2")["blob_id"])
    assert lab.probe("node2", "blob-get", blob_id).get("sha256") == blob_id
    assert lab.probe("node2", "mqtt-login") == {"ok": True}

    output = _revoke(lab, "node", "node2")
    assert "broker account" in output and "upload token" in output
    assert "applied to the running interface" in output

    topology = lab.state.topology
    server_peers = {p.allowed_ips for p in interface_status(topology.wg_interface("vpnserver"))}
    assert f"{lab.vpn_address('node1')}/32" in server_peers
    assert not any(ip.startswith("10.221.0.3/") for ip in server_peers)
    assert not lab.succeeds("node2", "ping", "-c", "2", "-W", "1", VPN_SERVER_ADDRESS)

    # The site still has its folder: connecting again gets no handshake at all.
    folder = str(lab.env_file("node2").parent)
    interface = topology.wg_interface("node2")
    lab.run("node2", *fedward_command("vpn", "down", folder), check=True)
    lab.run(
        "node2", *fedward_command("vpn", "connect", folder, "--interface", interface), check=True
    )
    assert not lab.succeeds("node2", "ping", "-c", "3", "-W", "1", VPN_SERVER_ADDRESS)
    assert not lab.tcp_open("node2", *BROKER)
    (peer,) = interface_status(interface)
    assert peer.latest_handshake is None

    # Its credentials are dead too, even from where the services can be reached.
    login = lab.probe("mqtt", "mqtt-login", settings_of="node2")
    assert login["ok"] is False and login["kind"] == "AccessDenied"
    download = lab.probe("restful", "blob-get", blob_id, settings_of="node2")
    assert download.get("kind") == "AccessDenied"

    # The other node goes on as before.
    assert lab.pings("node1", VPN_SERVER_ADDRESS), "node1 lost the VPN with node2's revocation"
    assert lab.probe("node1", "mqtt-login") == {"ok": True}


def test_the_seeds_manual_enrolment_still_works(small_lab: Lab) -> None:
    """genconf without a key, connect on the site (it makes and prints a key), then add."""
    lab = small_lab
    state_dir = str(vpn_dir(lab.state))
    vpn = ["vpn", "--state-dir", state_dir]
    lab.run("vpnserver", *fedward_command(*vpn, "genconf", "node", "site9"), check=True)
    site = lab.state.lab_dir / "sites" / "manual" / "site9"
    shutil.copytree(vpn_dir(lab.state) / "config_peers" / "node" / "site9", site)
    assert not (site / "private.key").exists()

    interface = lab.state.topology.wg_interface("node1")
    lab.run("node1", *fedward_command("vpn", "down", str(lab.env_file("node1").parent)), check=True)
    done = lab.run("node1", *fedward_command("vpn", "connect", str(site), "--interface", interface))
    assert done.returncode == 0, done.stderr
    public_key = done.stdout.split("public key: ")[1].split()[0]
    assert "fedward vpn add" in done.stdout
    assert not lab.succeeds("node1", "ping", "-c", "1", "-W", "1", VPN_SERVER_ADDRESS)

    lab.run("vpnserver", *fedward_command(*vpn, "add", "node", "site9", public_key), check=True)
    assert lab.pings("node1", VPN_SERVER_ADDRESS), "no answer from the server after 'vpn add'"
    assert lab.tcp_open("node1", *BROKER)
    env = (site / "fedward.env").read_text()
    assert f"FEDWARD_BROKER_PASSWORD_FILE={site}/broker_password" in env  # moved with the folder
