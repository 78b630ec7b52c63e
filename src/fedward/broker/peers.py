"""Who may connect to the broker: ``BrokerPeer`` and the peers file of ``fedward broker config``.

Peers file (TOML); ``password_file`` is relative to the peers file and holds the
password on its first line, so no secret ever sits in the peers file itself::

    [[peers]]
    role = "node"                 # "node" or "researcher"
    id = "node1"                  # also the broker username
    password_file = "secrets/node1.password"

The broker username of a peer is its id, so an id may appear once across both roles.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fedward.config.model import Secret
from fedward.core.ids import validate_id
from fedward.errors import ConfigError, ValidationError
from fedward.protocol.topics import PeerRole

ROLES: tuple[PeerRole, ...] = ("node", "researcher")


@dataclass(frozen=True)
class BrokerPeer:
    role: PeerRole
    peer_id: str
    password: Secret

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"unknown broker peer role {self.role!r}", hint="node or researcher")
        try:
            validate_id(self.peer_id, kind=f"{self.role} id")
        except ValidationError as exc:
            raise ConfigError(str(exc)) from exc
        if not self.password.reveal():
            raise ConfigError(f"empty broker password for {self.role} {self.peer_id!r}")

    @property
    def username(self) -> str:
        return self.peer_id


def check_unique(peers: Sequence[BrokerPeer]) -> None:
    """ConfigError if two peers would share a broker username."""
    seen: dict[str, BrokerPeer] = {}
    for peer in peers:
        other = seen.get(peer.username)
        if other is not None:
            raise ConfigError(
                f"broker username {peer.username!r} is used by {other.role} and {peer.role}",
                hint="give every node and researcher a distinct id",
            )
        seen[peer.username] = peer


def load_peers_file(path: Path) -> list[BrokerPeer]:
    """Read a peers file (format in this module's docstring)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"peers file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"peers file {path} is not valid TOML: {exc}") from exc
    entries = data.get("peers", [])
    if not isinstance(entries, list) or set(data) - {"peers"}:
        raise ConfigError(f"peers file {path} must hold only [[peers]] tables")
    peers = [_peer_from_entry(entry, index, path) for index, entry in enumerate(entries, 1)]
    check_unique(peers)
    return peers


def _peer_from_entry(entry: Any, index: int, path: Path) -> BrokerPeer:
    where = f"{path}, peer #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(entry) - {"role", "id", "password_file"})
    missing = sorted({"role", "id", "password_file"} - set(entry))
    if unknown or missing:
        raise ConfigError(f"{where}: unknown keys {unknown}, missing keys {missing}")
    if not all(isinstance(entry[key], str) for key in ("role", "id", "password_file")):
        raise ConfigError(f"{where}: role, id and password_file must be strings")
    password = Secret.from_file(path.parent / entry["password_file"])
    return BrokerPeer(cast(PeerRole, entry["role"]), entry["id"], password)
