"""WireGuard configuration text in ``wg setconf`` format (no wg-quick extras).

The server file lists one ``[Peer]`` per registered public key, with the peer's single
address as its only allowed IP: WireGuard then drops any packet whose source address is
not the sender's own, so a peer cannot pose as another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fedward.vpn.registry import PeerRecord

KEEPALIVE_S = 25
MTU = 1420
_SERVER_HEADER = "fedward VPN server interface, rendered from registry.json. Do not edit."


def render_server_config(private_key: str, listen_port: int, peers: Iterable[PeerRecord]) -> str:
    lines = [f"# {_SERVER_HEADER}", "[Interface]", f"PrivateKey = {private_key}"]
    lines.append(f"ListenPort = {listen_port}")
    for peer in peers:
        for public_key in peer.public_keys:
            lines += [
                "",
                f"# {peer.peer_type} {peer.peer_id}",
                "[Peer]",
                f"PublicKey = {public_key}",
                f"PresharedKey = {peer.preshared_key}",
                f"AllowedIPs = {peer.address}/32",
            ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ClientTunnel:
    """What a peer needs to reach the server."""

    private_key: str
    server_public_key: str
    preshared_key: str
    endpoint: str
    allowed_ips: str
    keepalive_s: int = KEEPALIVE_S


def render_client_config(tunnel: ClientTunnel) -> str:
    return (
        "\n".join(
            [
                "[Interface]",
                f"PrivateKey = {tunnel.private_key}",
                "",
                "[Peer]",
                f"PublicKey = {tunnel.server_public_key}",
                f"PresharedKey = {tunnel.preshared_key}",
                f"Endpoint = {tunnel.endpoint}",
                f"AllowedIPs = {tunnel.allowed_ips}",
                f"PersistentKeepalive = {tunnel.keepalive_s}",
            ]
        )
        + "\n"
    )
