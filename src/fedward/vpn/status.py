"""``fedward vpn status`` and ``list``: what the interface and the registry say, as tables."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedward.errors import VpnError
from fedward.text_table import render_table
from fedward.vpn.registry import PeerRecord
from fedward.vpn.system_tools import run_tool


@dataclass(frozen=True)
class PeerStatus:
    public_key: str
    endpoint: str | None
    allowed_ips: str
    latest_handshake: int | None  # unix time; None if never
    received_bytes: int
    sent_bytes: int


def parse_wg_dump(text: str) -> list[PeerStatus]:
    """Peers from ``wg show IFACE dump`` (its first line, the interface, holds the private key
    and is skipped)."""
    peers = []
    for line in text.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) != 8:
            raise VpnError(f"unexpected 'wg show dump' line with {len(fields)} fields")
        public_key, _psk, endpoint, allowed, handshake, received, sent, _keepalive = fields
        peers.append(
            PeerStatus(
                public_key=public_key,
                endpoint=None if endpoint == "(none)" else endpoint,
                allowed_ips=allowed,
                latest_handshake=int(handshake) or None,
                received_bytes=int(received),
                sent_bytes=int(sent),
            )
        )
    return peers


def interface_status(interface: str) -> list[PeerStatus]:
    return parse_wg_dump(run_tool(["wg", "show", interface, "dump"]))


def format_peer_list(peers: Sequence[PeerRecord]) -> str:
    """The seed's ``list`` table; the keys as the operator would paste them, one per column
    entry, or ``-`` when the peer has none registered yet."""
    rows = [
        [p.peer_type, p.peer_id, f"{p.address}/32", ", ".join(sorted(p.public_keys)) or "-"]
        for p in peers
    ]
    return render_table(["type", "id", "prefix", "peers"], rows, rule=True)


def _ago(timestamp: int | None, now: float) -> str:
    if timestamp is None:
        return "never"
    seconds = max(0, int(now - timestamp))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_status(
    peers: Sequence[PeerStatus],
    names: Mapping[str, str] | None = None,
    now: float | None = None,
) -> str:
    """One row per peer; ``names`` maps a public key to ``"type id"`` when the server knows it."""
    now = time.time() if now is None else now
    names = names or {}
    rows = [
        [
            names.get(p.public_key, p.public_key),
            p.allowed_ips,
            p.endpoint or "-",
            _ago(p.latest_handshake, now),
            _size(p.received_bytes),
            _size(p.sent_bytes),
        ]
        for p in peers
    ]
    headers = ["peer", "allowed ips", "endpoint", "latest handshake", "received", "sent"]
    return render_table(headers, rows, rule=True)


def peer_names(peers: Sequence[PeerRecord]) -> dict[str, str]:
    return {key: f"{p.peer_type} {p.peer_id}" for p in peers for key in p.public_keys}
