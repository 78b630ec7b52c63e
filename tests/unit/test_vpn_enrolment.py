"""Peer management on the VPN server: the seed's commands and what fedward adds to them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from fedward.config.loader import load_node_config, load_researcher_config
from fedward.errors import Conflict, NotFound
from fedward.uploads.tokens import TokenRegistry
from fedward.vpn.enrolment import VpnServer
from fedward.vpn.keys import generate_private_key, public_key_of
from fedward.vpn.peer_config import read_peer_config
from fedward.vpn.status import format_peer_list


@pytest.fixture
def vpn(tmp_path: Path) -> VpnServer:
    server = VpnServer(tmp_path / "vpn")
    server.init({"VPN_SERVER_PUBLIC_ADDR": "vpn.example.org"})
    return server


def _folder(vpn: VpnServer, peer_type: str, peer_id: str) -> Path:
    return vpn.layout.root / "config_peers" / peer_type / peer_id


def test_init_enrols_mqtt_and_restful_at_the_seed_addresses(vpn: VpnServer) -> None:
    peers = {(p.peer_type, p.peer_id): p for p in vpn.peers()}
    assert str(peers["management", "mqtt"].address) == "10.220.0.2"
    assert str(peers["management", "restful"].address) == "10.220.0.3"
    assert all(len(p.public_keys) == 1 for p in peers.values())


def test_addresses_follow_the_seed_plan_per_type(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    vpn.genconf("node", "node2")
    vpn.genconf("researcher", "alice")
    vpn.genconf("management", "extra")
    addresses = {p.peer_id: str(p.address) for p in vpn.peers()}
    assert addresses["node1"] == "10.221.0.2"
    assert addresses["node2"] == "10.221.0.3"
    assert addresses["alice"] == "10.222.0.2"
    assert addresses["extra"] == "10.220.0.4"


def test_genconf_is_idempotent(vpn: VpnServer) -> None:
    first = vpn.genconf("node", "node1", with_key=True)
    folder = _folder(vpn, "node", "node1")
    before = {p: p.read_bytes() for p in folder.iterdir()}
    registry = vpn.layout.registry.read_bytes()
    second = vpn.genconf("node", "node1", with_key=True)
    assert first.changed and not second.changed
    assert {p: p.read_bytes() for p in folder.iterdir()} == before
    assert vpn.layout.registry.read_bytes() == registry


def test_addresses_of_removed_peers_are_not_handed_out_again(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    vpn.removeconf("node", "node1")
    vpn.genconf("node", "node2")
    assert [str(p.address) for p in vpn.peers() if p.peer_type == "node"] == ["10.221.0.3"]


def test_one_folder_carries_everything_a_node_needs(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1", with_key=True)
    folder = _folder(vpn, "node", "node1")
    names = {p.name for p in folder.iterdir()}
    assert {"config.env", "private.key", "broker_password", "uploads_token", "fedward.env"} <= names
    config = read_peer_config(folder)
    assert str(config.address) == "10.221.0.2"
    assert config.server_endpoint == "vpn.example.org:51820"
    env = dict(
        line.split("=", 1)
        for line in (folder / "fedward.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    node = load_node_config(env=env, state_dir=folder / "state")
    assert node.node_id == "node1"
    assert (node.broker.host, node.broker.port) == ("10.220.0.2", 1883)
    assert node.broker.username == "node1"
    assert node.broker.password is not None
    assert node.broker.password.reveal() == (folder / "broker_password").read_text().strip()
    assert node.uploads.base_url == "http://10.220.0.3:8000"
    registered = next(p for p in vpn.peers() if p.peer_id == "node1").public_keys
    assert registered == (public_key_of((folder / "private.key").read_text().strip()),)


def test_researcher_settings_load_from_its_folder(vpn: VpnServer) -> None:
    vpn.genconf("researcher", "alice")
    folder = _folder(vpn, "researcher", "alice")
    env = dict(
        line.split("=", 1)
        for line in (folder / "fedward.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    config = load_researcher_config(env=env)
    assert config.researcher_id == "alice"
    assert config.broker.username == "alice"


def test_every_file_is_private(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1", with_key=True)
    for path in vpn.layout.root.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name == "mosquitto.conf":
            continue  # the broker's own choice: no secret in it
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{path} has mode {mode:o}"


def test_upload_token_and_broker_account_follow_the_registry(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    folder = _folder(vpn, "node", "node1")
    tokens = TokenRegistry(_folder(vpn, "management", "restful") / "uploads_tokens.json")
    token = (folder / "uploads_token").read_text().strip()
    acl = (_folder(vpn, "management", "mqtt") / "broker" / "acl").read_text()
    assert tokens.authenticate(token) == "node1"
    assert "user node1" in acl
    vpn.revoke("node", "node1")
    acl = (_folder(vpn, "management", "mqtt") / "broker" / "acl").read_text()
    assert tokens.authenticate(token) is None
    assert "user node1" not in acl
    assert not folder.exists()


def test_add_registers_a_key_made_on_the_peer(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    key = public_key_of(generate_private_key())
    assert vpn.add("node", "node1", key).changed
    assert not vpn.add("node", "node1", key).changed
    assert key in vpn.layout.wg_config.read_text()


def test_a_peer_may_hold_several_keys_as_in_the_seed(vpn: VpnServer) -> None:
    vpn.genconf("management", "extra")
    keys = [public_key_of(generate_private_key()) for _ in range(2)]
    for key in keys:
        vpn.add("management", "extra", key)
    listed = next(p for p in vpn.peers() if p.peer_id == "extra").public_keys
    assert set(listed) == set(keys)


def test_remove_drops_the_keys_but_keeps_the_folder(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1", with_key=True)
    vpn.remove("node", "node1")
    assert next(p for p in vpn.peers() if p.peer_id == "node1").public_keys == ()
    assert (_folder(vpn, "node", "node1") / "config.env").exists()
    assert "node node1" not in vpn.layout.wg_config.read_text()
    vpn.add("node", "node1", public_key_of(generate_private_key()))  # no new genconf needed


def test_list_prints_the_seed_table_with_keys_as_an_operator_pastes_them(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    vpn.genconf("node", "node2", with_key=True)
    lines = format_peer_list(vpn.peers()).splitlines()
    assert lines[0].split() == ["type", "id", "prefix", "peers"]
    assert set(lines[1]) == {"-", " "}
    assert lines[-2].split() == ["node", "node1", "10.221.0.2/32", "-"]
    (key,) = next(p for p in vpn.peers() if p.peer_id == "node2").public_keys
    assert lines[-1].split() == ["node", "node2", "10.221.0.3/32", key]
    assert "[" not in "\n".join(lines) and "'" not in "\n".join(lines)


def test_an_id_names_one_peer_across_types(vpn: VpnServer) -> None:
    vpn.genconf("node", "alice")
    with pytest.raises(Conflict, match="already used by a node"):
        vpn.genconf("researcher", "alice")


def test_services_cannot_be_removed_while_peers_depend_on_them(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    with pytest.raises(Conflict, match="revoke the nodes"):
        vpn.removeconf("management", "mqtt")


def test_commands_before_init_say_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="server init"):
        VpnServer(tmp_path / "none").genconf("node", "node1")


def test_init_again_updates_the_endpoint_of_every_peer(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    key_before = vpn.layout.private_key.read_text()
    vpn.init({"VPN_SERVER_PUBLIC_ADDR": "192.0.2.7", "VPN_SERVER_PORT": "51999"})
    config = read_peer_config(_folder(vpn, "node", "node1"))
    assert config.server_endpoint == "192.0.2.7:51999"
    assert vpn.layout.private_key.read_text() == key_before
    assert [p.peer_id for p in vpn.peers()] == ["mqtt", "restful", "node1"]


def test_registry_is_plain_json_without_peer_secrets_beyond_the_psk(vpn: VpnServer) -> None:
    vpn.genconf("node", "node1")
    data = json.loads(vpn.layout.registry.read_text())
    node = next(p for p in data["peers"] if p["id"] == "node1")
    assert set(node) == {"type", "id", "address", "preshared_key", "public_keys"}
