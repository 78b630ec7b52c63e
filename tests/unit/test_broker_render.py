"""Rendering the broker directory: golden files, file modes, stable re-rendering."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from fedward.broker.passwords import parse_password_file, verify_password
from fedward.broker.peers import BrokerPeer
from fedward.broker.render import (
    DEFAULT_MAX_CONNECTIONS,
    read_broker_settings,
    render_broker_config,
)
from fedward.config.model import Secret
from fedward.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden" / "broker"
PEERS = [
    BrokerPeer("researcher", "res1", Secret("researcher-password")),
    BrokerPeer("node", "node2", Secret("node2-password")),
    BrokerPeer("node", "node1", Secret("node1-password")),
]


def render_golden(out_dir: Path) -> None:
    """Fixed salts (0x00.., 0x01.., ... in peer order) make the password file golden too."""
    counter = itertools.count()
    render_broker_config(
        PEERS,
        out_dir,
        "10.220.0.2",
        1883,
        run_as="mosquitto",
        iterations=1000,
        salt_source=lambda size: bytes([next(counter)]) * size,
    )


@pytest.mark.parametrize("name", ["mosquitto.conf", "acl", "passwords"])
def test_rendered_file_matches_golden(tmp_path: Path, name: str) -> None:
    render_golden(tmp_path)
    rendered = (tmp_path / name).read_text().replace(str(tmp_path.absolute()), "{out_dir}")
    if os.environ.get("FEDWARD_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(rendered)
    assert rendered == (GOLDEN / name).read_text()


def test_secrets_files_are_private_and_hold_no_plaintext(tmp_path: Path) -> None:
    files = render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883)
    assert files.passwords.stat().st_mode & 0o777 == 0o600
    assert files.acl.stat().st_mode & 0o777 == 0o600
    text = files.passwords.read_text()
    assert all(peer.password.reveal() not in text for peer in PEERS)
    hashes = parse_password_file(text)
    assert all(verify_password(p.password.reveal(), hashes[p.username]) for p in PEERS)


def test_rendering_the_same_peers_again_changes_no_byte(tmp_path: Path) -> None:
    render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883)
    before = {
        name: (tmp_path / name).read_bytes() for name in ("mosquitto.conf", "passwords", "acl")
    }
    render_broker_config(list(reversed(PEERS)), tmp_path, "127.0.0.1", 1883)
    after = {name: (tmp_path / name).read_bytes() for name in before}
    assert after == before


def test_changed_password_gets_a_new_hash(tmp_path: Path) -> None:
    render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883)
    changed = [*PEERS[:2], BrokerPeer("node", "node1", Secret("rotated"))]
    render_broker_config(changed, tmp_path, "127.0.0.1", 1883)
    hashes = parse_password_file((tmp_path / "passwords").read_text())
    assert verify_password("rotated", hashes["node1"])
    assert not verify_password("node1-password", hashes["node1"])


def test_removed_peer_disappears_from_passwords_and_acl(tmp_path: Path) -> None:
    render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883)
    render_broker_config(PEERS[:2], tmp_path, "127.0.0.1", 1883)
    assert "node1" not in parse_password_file((tmp_path / "passwords").read_text())
    assert "node1" not in (tmp_path / "acl").read_text()


def test_same_id_as_node_and_researcher_is_refused(tmp_path: Path) -> None:
    twins = [
        BrokerPeer("node", "alice", Secret("a")),
        BrokerPeer("researcher", "alice", Secret("b")),
    ]
    with pytest.raises(ConfigError, match="alice"):
        render_broker_config(twins, tmp_path, "127.0.0.1", 1883)


@pytest.mark.parametrize("host", ["", "10.0.0.1 extra", "a\nb"])
def test_listen_host_that_would_break_the_config_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError):
        render_broker_config(PEERS, tmp_path, host, 1883)


def test_settings_read_back_what_was_rendered(tmp_path: Path) -> None:
    files = render_broker_config(PEERS, tmp_path, "10.220.0.2", 1884, max_message_bytes=5000)
    settings = read_broker_settings(files.conf)
    assert (settings.host, settings.port) == ("10.220.0.2", 1884)
    assert settings.password_file == files.passwords
    assert settings.acl_file == files.acl
    assert settings.message_size_limit == 5000
    assert settings.max_packet_size > 5000


def test_settings_of_a_foreign_config_are_a_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 1883\nallow_anonymous true\n")
    with pytest.raises(ConfigError, match="fedward broker config"):
        read_broker_settings(conf)


def test_max_connections_is_rendered_for_both_brokers_and_read_back(tmp_path: Path) -> None:
    files = render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883, max_connections=5000)
    assert "max_connections 5000\n" in files.conf.read_text()
    assert read_broker_settings(files.conf).max_connections == 5000


def test_a_config_rendered_before_max_connections_gets_the_default(tmp_path: Path) -> None:
    files = render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883)
    lines = files.conf.read_text().splitlines()
    files.conf.write_text("".join(f"{line}\n" for line in lines if "max_connections" not in line))
    assert read_broker_settings(files.conf).max_connections == DEFAULT_MAX_CONNECTIONS


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_a_max_connections_that_is_not_a_positive_count_is_refused(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(ConfigError):
        render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883, max_connections=0)
    files = render_broker_config(PEERS, tmp_path, "127.0.0.1", 1883)
    files.conf.write_text(
        files.conf.read_text().replace("max_connections 1024", f"max_connections {bad}")
    )
    with pytest.raises(ConfigError):
        read_broker_settings(files.conf)
