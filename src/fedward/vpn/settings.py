"""The VPN server's settings: the seed's address plan and ``VPN_*`` names.

    VPN net               10.220.0.0/14   (VPN_IP=10.220.0.1, VPN_SUBNET_PREFIX=14)
    management peers      10.220.0.0/16   (VPN_MANAGEMENT_IP_ASSIGN; mqtt .2, restful .3)
    nodes                 10.221.0.0/16   (VPN_NODE_IP_ASSIGN)
    researchers           10.222.0.0/16   (VPN_RESEARCHER_IP_ASSIGN)

They live in the server's ``config.env`` (mode 0600), written by ``fedward vpn server init``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal, get_args

from fedward.errors import ConfigError, ValidationError
from fedward.vpn.envfile import read_env, render_env

PeerType = Literal["management", "node", "researcher"]
PEER_TYPES: tuple[PeerType, ...] = get_args(PeerType)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)

# name in config.env -> (field, default)
_ENV_NAMES: dict[str, tuple[str, str]] = {
    "VPN_SERVER_PUBLIC_ADDR": ("public_addr", ""),
    "VPN_SERVER_PORT": ("port", "51820"),
    "VPN_IP": ("vpn_ip", "10.220.0.1"),
    "VPN_SUBNET_PREFIX": ("subnet_prefix", "14"),
    "VPN_MANAGEMENT_IP_ASSIGN": ("management_range", "10.220.0.0/16"),
    "VPN_NODE_IP_ASSIGN": ("node_range", "10.221.0.0/16"),
    "VPN_RESEARCHER_IP_ASSIGN": ("researcher_range", "10.222.0.0/16"),
    "USE_WG_KERNEL_MOD": ("use_kernel_module", "true"),
    "MQTT_BROKER_PORT": ("broker_port", "1883"),
    "UPLOADS_PORT": ("uploads_port", "8000"),
}
SETTING_NAMES = tuple(_ENV_NAMES)
_DEFAULT_VPN_IP = IPv4Address("10.220.0.1")
_DEFAULT_RANGES = {
    "management": IPv4Network("10.220.0.0/16"),
    "node": IPv4Network("10.221.0.0/16"),
    "researcher": IPv4Network("10.222.0.0/16"),
}


def parse_peer_type(value: str) -> PeerType:
    for peer_type in PEER_TYPES:
        if value == peer_type:
            return peer_type
    raise ValidationError(f"unknown peer type {value!r}", hint="use management, node or researcher")


def validate_public_addr(value: str) -> str:
    """A host name or an IP address that peers use to reach the server."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise ConfigError(
            f"VPN_SERVER_PUBLIC_ADDR {value!r} is neither a host name nor an IP address"
        )
    return value


def _port(value: str, name: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name} must be a port number 1-65535, got {value!r}")
    return int(value)


def _network(value: str, name: str) -> IPv4Network:
    try:
        return IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an IPv4 network such as 10.221.0.0/16: {exc}") from exc


def _bool(value: str, name: str) -> bool:
    if value.lower() in {"true", "1", "yes"}:
        return True
    if value.lower() in {"false", "0", "no"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class ServerSettings:
    public_addr: str
    port: int = 51820
    vpn_ip: IPv4Address = _DEFAULT_VPN_IP
    subnet_prefix: int = 14
    management_range: IPv4Network = _DEFAULT_RANGES["management"]
    node_range: IPv4Network = _DEFAULT_RANGES["node"]
    researcher_range: IPv4Network = _DEFAULT_RANGES["researcher"]
    use_kernel_module: bool = True
    broker_port: int = 1883
    uploads_port: int = 8000

    def __post_init__(self) -> None:
        validate_public_addr(self.public_addr)
        if not 8 <= self.subnet_prefix <= 30:
            raise ConfigError(f"VPN_SUBNET_PREFIX must be 8-30, got {self.subnet_prefix}")
        net = self.network
        ranges = [(t, self.range_of(t)) for t in PEER_TYPES]
        for peer_type, network in ranges:
            if not network.subnet_of(net):
                raise ConfigError(f"the {peer_type} range {network} is outside the VPN net {net}")
        for index, (first_type, first) in enumerate(ranges):
            for second_type, second in ranges[index + 1 :]:
                if first.overlaps(second):
                    raise ConfigError(f"the {first_type} and {second_type} ranges overlap")
        if self.vpn_ip not in self.management_range:
            raise ConfigError(f"VPN_IP {self.vpn_ip} must lie in the management range")

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.vpn_ip}/{self.subnet_prefix}", strict=False)

    @property
    def endpoint(self) -> str:
        host = f"[{self.public_addr}]" if ":" in self.public_addr else self.public_addr
        return f"{host}:{self.port}"

    def range_of(self, peer_type: PeerType) -> IPv4Network:
        ranges = {
            "management": self.management_range,
            "node": self.node_range,
            "researcher": self.researcher_range,
        }
        return ranges[peer_type]

    def as_env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for env_name, (field_name, _) in _ENV_NAMES.items():
            value = getattr(self, field_name)
            values[env_name] = str(value).lower() if isinstance(value, bool) else str(value)
        return values


def settings_from_env(values: dict[str, str], base: ServerSettings | None = None) -> ServerSettings:
    """Settings from ``VPN_*`` values; names absent from ``values`` keep ``base`` or the default."""
    parsed: dict[str, object] = {}
    base_env = base.as_env() if base else {}
    for env_name, (field_name, default) in _ENV_NAMES.items():
        raw = values.get(env_name) or base_env.get(env_name) or default
        if field_name == "public_addr":
            if not raw:
                raise ConfigError("no public address", hint="pass --public-addr HOST")
            parsed[field_name] = raw
        elif field_name in {"port", "broker_port", "uploads_port"}:
            parsed[field_name] = _port(raw, env_name)
        elif field_name == "vpn_ip":
            try:
                parsed[field_name] = IPv4Address(raw)
            except ValueError as exc:
                raise ConfigError(f"VPN_IP must be an IPv4 address, got {raw!r}") from exc
        elif field_name == "subnet_prefix":
            if not raw.isdigit():
                raise ConfigError(f"VPN_SUBNET_PREFIX must be a number, got {raw!r}")
            parsed[field_name] = int(raw)
        elif field_name == "use_kernel_module":
            parsed[field_name] = _bool(raw, env_name)
        else:
            parsed[field_name] = _network(raw, env_name)
    return ServerSettings(**parsed)  # type: ignore[arg-type]


def read_settings(path: Path) -> ServerSettings:
    return settings_from_env(read_env(path, required=SETTING_NAMES))


def render_settings(settings: ServerSettings) -> str:
    return render_env(
        settings.as_env(), header="fedward VPN server settings (fedward vpn server init)"
    )
