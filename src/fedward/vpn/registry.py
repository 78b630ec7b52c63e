"""The server's peer registry: who has which address, preshared key and public keys.

One JSON file, read and rewritten whole (atomically, mode 0600) under an exclusive
``fcntl`` lock, so concurrent ``genconf`` runs never hand out the same address. Peer ids
are unique across types: they also name the peer's broker user and upload token.

Addresses come from a per-type counter that never goes back (as in the seed): an address
that belonged to a revoked peer is not handed to the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from fedward.core.ids import validate_id
from fedward.errors import Conflict, NotFound, ValidationError, VpnError
from fedward.storage.atomic import atomic_write_text
from fedward.vpn.keys import validate_key
from fedward.vpn.settings import PEER_TYPES, PeerType, ServerSettings, parse_peer_type

REGISTRY_VERSION = 1


@dataclass(frozen=True)
class PeerRecord:
    peer_type: PeerType
    peer_id: str
    address: IPv4Address
    preshared_key: str
    public_keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.peer_type,
            "id": self.peer_id,
            "address": str(self.address),
            "preshared_key": self.preshared_key,
            "public_keys": list(self.public_keys),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PeerRecord:
        return cls(
            peer_type=parse_peer_type(data["type"]),
            peer_id=validate_id(data["id"], kind="peer id"),
            address=IPv4Address(data["address"]),
            preshared_key=validate_key(data["preshared_key"], what="preshared key"),
            public_keys=tuple(validate_key(k, what="public key") for k in data["public_keys"]),
        )


@dataclass(frozen=True)
class Registry:
    peers: tuple[PeerRecord, ...] = ()
    last_assigned: dict[str, str] = field(default_factory=dict)

    def find(self, peer_type: PeerType, peer_id: str) -> PeerRecord | None:
        for peer in self.peers:
            if peer.peer_id == peer_id and peer.peer_type == peer_type:
                return peer
        return None

    def get(self, peer_type: PeerType, peer_id: str) -> PeerRecord:
        peer = self.find(peer_type, peer_id)
        if peer is None:
            raise NotFound(
                f"no {peer_type} peer {peer_id!r}",
                hint=f"create it first: fedward vpn genconf {peer_type} {peer_id}",
            )
        return peer

    def check_id_free(self, peer_type: PeerType, peer_id: str) -> None:
        for peer in self.peers:
            if peer.peer_id == peer_id and peer.peer_type != peer_type:
                raise Conflict(
                    f"id {peer_id!r} is already used by a {peer.peer_type} peer",
                    hint="peer ids name broker users and upload tokens, so they are unique",
                )

    def owner_of_key(self, public_key: str) -> PeerRecord | None:
        for peer in self.peers:
            if public_key in peer.public_keys:
                return peer
        return None

    def with_peer(self, record: PeerRecord) -> Registry:
        """A registry where ``record`` replaces the peer of the same type and id (or is added)."""
        others = [
            p for p in self.peers if (p.peer_type, p.peer_id) != (record.peer_type, record.peer_id)
        ]
        return replace(self, peers=(*others, record))

    def without_peer(self, peer_type: PeerType, peer_id: str) -> Registry:
        kept = tuple(p for p in self.peers if (p.peer_type, p.peer_id) != (peer_type, peer_id))
        return replace(self, peers=kept)

    def allocate(
        self, peer_type: PeerType, settings: ServerSettings
    ) -> tuple[IPv4Address, Registry]:
        """The next free address of ``peer_type``'s range and the registry that records it."""
        network = settings.range_of(peer_type)
        first = network.network_address + 2  # .1 is kept for a gateway, as in the seed
        last = network.broadcast_address - 1
        previous = self.last_assigned.get(peer_type)
        candidate = max(first, IPv4Address(previous) + 1) if previous else first
        taken = {p.address for p in self.peers} | {settings.vpn_ip}
        while candidate <= last and candidate in taken:
            candidate += 1
        if candidate > last:
            env_name = f"VPN_{peer_type.upper()}_IP_ASSIGN"
            raise VpnError(
                f"the {peer_type} address range {network} is exhausted",
                hint=f"addresses are never reused; widen {env_name} with "
                f"'fedward vpn server init --{peer_type}-range NET'",
            )
        assigned = {**self.last_assigned, peer_type: str(candidate)}
        return candidate, replace(self, last_assigned=assigned)

    def sorted_peers(self) -> list[PeerRecord]:
        return sorted(self.peers, key=lambda p: (PEER_TYPES.index(p.peer_type), p.address))

    def to_json(self) -> str:
        data = {
            "version": REGISTRY_VERSION,
            "last_assigned": dict(sorted(self.last_assigned.items())),
            "peers": [p.to_json() for p in self.sorted_peers()],
        }
        return json.dumps(data, indent=2) + "\n"


def parse_registry(text: str, source: str) -> Registry:
    try:
        data = json.loads(text)
        if data.get("version") != REGISTRY_VERSION:
            raise ValidationError(f"{source} has unknown version {data.get('version')!r}")
        peers = tuple(PeerRecord.from_json(item) for item in data["peers"])
        last: dict[str, str] = {
            parse_peer_type(k): str(IPv4Address(v)) for k, v in data["last_assigned"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VpnError(f"the peer registry {source} is damaged: {exc}") from exc
    return Registry(peers=peers, last_assigned=last)


def load_registry(path: Path) -> Registry:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Registry()
    return parse_registry(text, str(path))


def save_registry(path: Path, registry: Registry) -> None:
    atomic_write_text(path, registry.to_json(), mode=0o600)
