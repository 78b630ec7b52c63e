"""A peer's ``config.env``: the seed's fields, rendered by the server and read by the peer.

    VPN_IP=10.221.0.2                 the peer's address
    VPN_SUBNET_PREFIX=14
    VPN_SERVER_ENDPOINT=vpn.example.org:51820
    VPN_SERVER_ALLOWED_IPS=10.220.0.0/14
    VPN_SERVER_PUBLIC_KEY=...
    VPN_SERVER_PSK=...
    USE_WG_KERNEL_MOD=true
    NODE_ID=node1                     (nodes; researchers carry RESEARCHER_ID)

Reading is strict (see ``envfile``): a truncated or hand-edited file is refused with a
message that names the problem, before anything is changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from fedward.core.ids import validate_id
from fedward.errors import ValidationError
from fedward.vpn.envfile import parse_env, read_env, render_env
from fedward.vpn.keys import validate_key
from fedward.vpn.registry import PeerRecord
from fedward.vpn.settings import PeerType, ServerSettings, validate_public_addr

CONFIG_ENV = "config.env"
_REQUIRED = (
    "VPN_IP",
    "VPN_SUBNET_PREFIX",
    "VPN_SERVER_ENDPOINT",
    "VPN_SERVER_ALLOWED_IPS",
    "VPN_SERVER_PUBLIC_KEY",
    "VPN_SERVER_PSK",
    "USE_WG_KERNEL_MOD",
)
_ID_KEYS: dict[PeerType, str] = {"node": "NODE_ID", "researcher": "RESEARCHER_ID"}
_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):(\d{1,5})$")
_HEADER = "fedward VPN peer configuration, written by 'fedward vpn genconf'. Do not edit."


@dataclass(frozen=True)
class PeerConfig:
    peer_type: PeerType
    peer_id: str
    address: IPv4Address
    subnet_prefix: int
    server_endpoint: str
    server_allowed_ips: IPv4Network
    server_public_key: str
    server_psk: str
    use_kernel_module: bool

    def as_env(self) -> dict[str, str]:
        values = {
            "VPN_IP": str(self.address),
            "VPN_SUBNET_PREFIX": str(self.subnet_prefix),
            "VPN_SERVER_ENDPOINT": self.server_endpoint,
            "VPN_SERVER_ALLOWED_IPS": str(self.server_allowed_ips),
            "VPN_SERVER_PUBLIC_KEY": self.server_public_key,
            "VPN_SERVER_PSK": self.server_psk,
            "USE_WG_KERNEL_MOD": "true" if self.use_kernel_module else "false",
        }
        if self.peer_type in _ID_KEYS:
            values[_ID_KEYS[self.peer_type]] = self.peer_id
        return values


def peer_config_for(
    record: PeerRecord, settings: ServerSettings, server_public_key: str
) -> PeerConfig:
    return PeerConfig(
        peer_type=record.peer_type,
        peer_id=record.peer_id,
        address=record.address,
        subnet_prefix=settings.subnet_prefix,
        server_endpoint=settings.endpoint,
        server_allowed_ips=settings.network,
        server_public_key=server_public_key,
        server_psk=record.preshared_key,
        use_kernel_module=settings.use_kernel_module,
    )


def render_peer_config(config: PeerConfig) -> str:
    return render_env(config.as_env(), header=_HEADER)


def _check_endpoint(value: str, source: str) -> str:
    match = _ENDPOINT.fullmatch(value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValidationError(f"{source}: VPN_SERVER_ENDPOINT {value!r} is not HOST:PORT")
    try:
        validate_public_addr(match.group(1).strip("[]"))
    except ValueError as exc:
        raise ValidationError(f"{source}: VPN_SERVER_ENDPOINT {value!r}: {exc}") from exc
    return value


def peer_config_from_env(values: dict[str, str], *, source: str, folder_name: str) -> PeerConfig:
    peer_type: PeerType = "management"
    peer_id = folder_name
    for candidate, key in _ID_KEYS.items():
        if key in values:
            if peer_type != "management":
                raise ValidationError(f"{source} carries both NODE_ID and RESEARCHER_ID")
            peer_type, peer_id = candidate, values[key]
    try:
        validate_id(peer_id, kind="peer id")
        address = IPv4Address(values["VPN_IP"])
        prefix = values["VPN_SUBNET_PREFIX"]
        if not prefix.isdigit() or not 8 <= int(prefix) <= 30:
            raise ValidationError(f"VPN_SUBNET_PREFIX must be 8-30, got {prefix!r}")
        allowed = IPv4Network(values["VPN_SERVER_ALLOWED_IPS"], strict=True)
        kernel = values["USE_WG_KERNEL_MOD"].lower()
        if kernel not in {"true", "false"}:
            raise ValidationError(f"USE_WG_KERNEL_MOD must be true or false, got {kernel!r}")
        config = PeerConfig(
            peer_type=peer_type,
            peer_id=peer_id,
            address=address,
            subnet_prefix=int(prefix),
            server_endpoint=_check_endpoint(values["VPN_SERVER_ENDPOINT"], source),
            server_allowed_ips=allowed,
            server_public_key=validate_key(values["VPN_SERVER_PUBLIC_KEY"], what="server key"),
            server_psk=validate_key(values["VPN_SERVER_PSK"], what="preshared key"),
            use_kernel_module=kernel == "true",
        )
    except ValidationError as exc:
        raise ValidationError(f"{source}: {exc.message}", hint=exc.hint) from exc
    except ValueError as exc:
        raise ValidationError(f"{source}: {exc}", hint="restore the file from the server") from exc
    if config.address not in config.server_allowed_ips:
        raise ValidationError(f"{source}: VPN_IP {address} is outside {allowed}")
    return config


def parse_peer_config(text: str, *, source: str, folder_name: str) -> PeerConfig:
    values = parse_env(text, source=source, required=_REQUIRED, optional=_ID_KEYS.values())
    return peer_config_from_env(values, source=source, folder_name=folder_name)


def read_peer_config(folder: Path) -> PeerConfig:
    path = Path(folder) / CONFIG_ENV
    values = read_env(path, required=_REQUIRED, optional=_ID_KEYS.values())
    return peer_config_from_env(values, source=str(path), folder_name=Path(folder).resolve().name)
