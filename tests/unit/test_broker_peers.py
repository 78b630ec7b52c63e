"""The peers file of ``fedward broker config``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedward.broker.peers import BrokerPeer, load_peers_file
from fedward.config.model import Secret
from fedward.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "n1").write_text("node-pw\n")
    (tmp_path / "secrets" / "r1").write_text("res-pw")
    path = tmp_path / "peers.toml"
    path.write_text(text)
    return path


def test_peers_file_gives_peers_with_passwords_from_relative_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[peers]]\nrole = "node"\nid = "n1"\npassword_file = "secrets/n1"\n'
        '[[peers]]\nrole = "researcher"\nid = "r1"\npassword_file = "secrets/r1"\n',
    )
    assert load_peers_file(path) == [
        BrokerPeer("node", "n1", Secret("node-pw")),
        BrokerPeer("researcher", "r1", Secret("res-pw")),
    ]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('role = "admin"\nid = "n1"\npassword_file = "secrets/n1"', "role"),
        ('role = "node"\nid = "../n1"\npassword_file = "secrets/n1"', "node id"),
        ('role = "node"\nid = "n1"', "missing"),
        ('role = "node"\nid = "n1"\npassword_file = "secrets/n1"\npassword = "x"', "unknown"),
        ('role = "node"\nid = "n1"\npassword_file = "secrets/none"', "cannot read"),
    ],
)
def test_bad_peer_entries_are_config_errors(tmp_path: Path, body: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_peers_file(write(tmp_path, f"[[peers]]\n{body}\n"))


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    entry = '[[peers]]\nrole = "node"\nid = "n1"\npassword_file = "secrets/n1"\n'
    with pytest.raises(ConfigError, match="n1"):
        load_peers_file(write(tmp_path, entry + entry))


def test_missing_or_invalid_peers_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_peers_file(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="TOML"):
        load_peers_file(write(tmp_path, "[[peers]\n"))


def test_password_never_shows_in_repr() -> None:
    assert "hunter2" not in repr(BrokerPeer("node", "n1", Secret("hunter2")))


def test_empty_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        BrokerPeer("node", "n1", Secret(""))
