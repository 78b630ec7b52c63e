"""The lab's names and addresses: one network namespace per component on a private "internet".

    namespace fwXXXX-internet    holds the bridge; nothing else runs there
    namespace fwXXXX-vpnserver   192.0.2.1   WireGuard hub (UDP 51820, the only open port)
    namespace fwXXXX-mqtt        192.0.2.2   Mosquitto on 10.220.0.2:1883 (VPN only)
    namespace fwXXXX-restful     192.0.2.3   upload server on 10.220.0.3:8000 (VPN only)
    namespace fwXXXX-researcher  192.0.2.4
    namespace fwXXXX-outside     192.0.2.5   on the internet, not in the VPN
    namespace fwXXXX-nodeN       192.0.2.(10+N)

192.0.2.0/24 is TEST-NET-1: it exists only inside these namespaces. ``XXXX`` is a random
lab id, so several labs (say, concurrent test runs) never share a name. WireGuard
interface names carry it too: ``wireguard-go`` keeps its sockets in one directory for the
whole machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Literal

from fedward.errors import ValidationError

MAX_NODES = 100
INTERNET_PREFIX = "192.0.2"
RESEARCHER_ID = "researcher1"
VPN_PORT = 51820
PeerKind = Literal["management", "node", "researcher"]

_FIXED_HOSTS = {"vpnserver": 1, "mqtt": 2, "restful": 3, "researcher": 4, "outside": 5}
_SHORT = {"vpnserver": "vs", "mqtt": "mq", "restful": "rf", "researcher": "rs", "outside": "ox"}


@dataclass(frozen=True)
class LabTopology:
    lab_id: str  # 4 hex digits
    nodes: int

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValidationError(f"a lab has 1 to {MAX_NODES} nodes, not {self.nodes}")

    @property
    def prefix(self) -> str:
        return f"fw{self.lab_id}"

    @property
    def node_names(self) -> list[str]:
        return [f"node{index}" for index in range(1, self.nodes + 1)]

    @property
    def components(self) -> list[str]:
        """Every namespace on the internet bridge, the VPN server first."""
        return ["vpnserver", "mqtt", "restful", "researcher", *self.node_names, "outside"]

    @property
    def peers(self) -> list[str]:
        """Components that join the VPN as peers."""
        return ["mqtt", "restful", "researcher", *self.node_names]

    @property
    def internet_namespace(self) -> str:
        return f"{self.prefix}-internet"

    def namespace(self, component: str) -> str:
        return f"{self.prefix}-{component}"

    def internet_address(self, component: str) -> IPv4Interface:
        host = _FIXED_HOSTS.get(component) or 10 + int(component.removeprefix("node"))
        return IPv4Interface(f"{INTERNET_PREFIX}.{host}/24")

    def short_name(self, component: str) -> str:
        return _SHORT.get(component) or "n" + component.removeprefix("node")

    def wg_interface(self, component: str) -> str:
        return f"{self.prefix}{self.short_name(component)}"

    def bridge_port(self, component: str) -> str:
        return f"v-{self.short_name(component)}"

    def peer_identity(self, component: str) -> tuple[PeerKind, str]:
        """The VPN peer (type, id) of a component."""
        if component in ("mqtt", "restful"):
            return "management", component
        if component == "researcher":
            return "researcher", RESEARCHER_ID
        return "node", component
