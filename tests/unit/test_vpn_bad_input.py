"""Every bad input of the issue is refused with a clear error, and no file changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedward.cli import main
from fedward.errors import ValidationError
from fedward.vpn.enrolment import VpnServer
from fedward.vpn.keys import generate_private_key, public_key_of
from fedward.vpn.tunnels import connect

BAD_IDS = ["../x", "a b", "$(id)", "x" * 65, ""]
Snapshot = dict[str, tuple[bytes, int, int]]


def snapshot(root: Path) -> Snapshot:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    root = tmp_path / "vpn"
    VpnServer(root).init(
        {"VPN_SERVER_PUBLIC_ADDR": "192.0.2.1", "VPN_NODE_IP_ASSIGN": "10.221.0.0/29"}
    )
    VpnServer(root).genconf("node", "node1")
    return root


def refused(state_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``fedward vpn ARGS``; check it fails and changes nothing; return its message."""
    before = snapshot(state_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["vpn", "--state-dir", str(state_dir), *args])
    assert exit_info.value.code not in (0, None)
    assert snapshot(state_dir) == before
    err = capsys.readouterr().err
    assert err.startswith(("error: ", "Error: ", "Usage: "))
    return err


@pytest.mark.parametrize("peer_id", BAD_IDS)
@pytest.mark.parametrize("command", ["genconf", "remove", "removeconf", "revoke"])
def test_invalid_ids_are_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str], command: str, peer_id: str
) -> None:
    err = refused(state_dir, capsys, command, "node", peer_id)
    assert "invalid node id" in err
    assert "1 to 64 letters" in err


@pytest.mark.parametrize("peer_id", BAD_IDS)
def test_invalid_ids_are_refused_by_add(
    state_dir: Path, capsys: pytest.CaptureFixture[str], peer_id: str
) -> None:
    key = public_key_of(generate_private_key())
    assert "invalid node id" in refused(state_dir, capsys, "add", "node", peer_id, key)


def test_an_id_of_64_characters_is_fine(state_dir: Path) -> None:
    VpnServer(state_dir).genconf("node", "n" * 64)


@pytest.mark.parametrize("command", ["genconf", "remove", "removeconf", "revoke"])
def test_unknown_type_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    err = refused(state_dir, capsys, command, "hospital", "node9")
    assert "unknown peer type 'hospital'" in err
    assert "management, node or researcher" in err


def test_add_before_genconf_is_refused(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = public_key_of(generate_private_key())
    err = refused(state_dir, capsys, "add", "node", "node2", key)
    assert "no node peer 'node2'" in err
    assert "fedward vpn genconf node node2" in err


@pytest.mark.parametrize(
    "key", ["abc", "A" * 44, "$(id)", public_key_of(generate_private_key())[:-2]]
)
def test_malformed_public_key_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    assert "malformed public key" in refused(state_dir, capsys, "add", "node", "node1", key)


def test_a_key_of_another_peer_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = VpnServer(state_dir)
    mqtt_key = next(p for p in server.peers() if p.peer_id == "mqtt").public_keys[0]
    err = refused(state_dir, capsys, "add", "node", "node1", mqtt_key)
    assert "already registered for management mqtt" in err


def test_the_servers_own_key_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server_key = public_key_of((state_dir / "server.key").read_text().strip())
    assert "server's own public key" in refused(
        state_dir, capsys, "add", "node", "node1", server_key
    )


def _config_env(state_dir: Path) -> Path:
    return state_dir / "config_peers" / "node" / "node1" / "config.env"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[: len(text) // 2], "truncated"),
        (lambda text: "\n".join(text.splitlines()[:-2]) + "\n", "lacks"),
        (lambda text: text.replace("10.221.0.2", "10.221.0.9"), "differs from the registry"),
        (lambda text: text + "EXTRA=1\n", "unknown key EXTRA"),
        (lambda text: text.replace("VPN_IP=", "VPN_IP=$(id)"), "not allowed"),
        (lambda text: text + "VPN_IP=10.221.0.2\n", "set twice"),
        (lambda text: text.replace("VPN_SUBNET_PREFIX=14", "VPN_SUBNET_PREFIX=x"), "8-30"),
    ],
)
def test_a_damaged_config_env_is_refused_on_the_server(
    state_dir: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    path = _config_env(state_dir)
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    key = public_key_of(generate_private_key())
    assert message in refused(state_dir, capsys, "add", "node", "node1", key)
    assert message in refused(state_dir, capsys, "genconf", "node", "node1")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text[: len(text) // 2], "truncated"),
        (lambda text: "\n".join(text.splitlines()[:3]) + "\n", "lacks"),
        (lambda text: text.replace("VPN_IP=10.221.0.2", "VPN_IP=172.16.0.1"), "outside"),
        (lambda text: text.replace(":51820", ":99999"), "not HOST:PORT"),
        (
            lambda text: text.replace("USE_WG_KERNEL_MOD=true", "USE_WG_KERNEL_MOD=maybe"),
            "true or false",
        ),
        (lambda text: text + "NODE_ID=../x\n", "set twice"),
    ],
)
def test_a_damaged_config_env_is_refused_on_the_peer(
    state_dir: Path, tmp_path: Path, edit: object, message: str
) -> None:
    site = tmp_path / "site" / "node1"
    site.mkdir(parents=True)
    text = _config_env(state_dir).read_text()
    (site / "config.env").write_text(edit(text))  # type: ignore[operator]
    before = snapshot(site)
    with pytest.raises(ValidationError, match=message):
        connect(site, interface="fwtest0")
    assert snapshot(site) == before


def test_an_exhausted_range_is_refused(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = VpnServer(state_dir)
    for index in range(2, 6):  # 10.221.0.0/29 holds .2 (node1) to .6
        server.genconf("node", f"node{index}")
    err = refused(state_dir, capsys, "genconf", "node", "node6")
    assert "the node address range 10.221.0.0/29 is exhausted" in err
    assert "VPN_NODE_IP_ASSIGN" in err


def test_a_range_can_grow_after_it_is_exhausted(state_dir: Path) -> None:
    server = VpnServer(state_dir)
    for index in range(2, 6):
        server.genconf("node", f"node{index}")
    server.init({"VPN_NODE_IP_ASSIGN": "10.221.0.0/16"})
    server.genconf("node", "node6")
    assert str(next(p for p in server.peers() if p.peer_id == "node6").address) == "10.221.0.7"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("VPN_NODE_IP_ASSIGN=10.221.0.8/29", "outside the new node range"),
        ("VPN_NODE_IP_ASSIGN=10.220.0.0/16", "overlap"),
        ("VPN_RESEARCHER_IP_ASSIGN=192.168.0.0/16", "outside the VPN net"),
        ("VPN_SERVER_PORT=0", "port number"),
        ("VPN_SERVER_PUBLIC_ADDR=bad host", "neither a host name"),
    ],
)
def test_bad_server_settings_are_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str], setting: str, message: str
) -> None:
    name, value = setting.split("=", 1)
    options = {
        "VPN_NODE_IP_ASSIGN": "--node-range",
        "VPN_RESEARCHER_IP_ASSIGN": "--researcher-range",
        "VPN_SERVER_PORT": "--port",
        "VPN_SERVER_PUBLIC_ADDR": "--public-addr",
    }
    assert message in refused(state_dir, capsys, "server", "init", options[name], value)
