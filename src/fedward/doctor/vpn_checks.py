"""The VPN rows: WireGuard interface, latest handshake, ping of the VPN server.

A peer's tunnel is described by its enrolment folder: ``config.env`` (server endpoint, the
VPN net), ``private.key`` and the ``run.json`` that ``fedward vpn connect`` leaves (which
interface it made). The server's is its state directory and ``fedward vpn up``'s
``run.json``. Reading a handshake (``wg show``) needs root; without it that row is skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Address
from pathlib import Path

from fedward.doctor.outcome import Check, Outcome, failed, passed, skipped
from fedward.vpn.interface import RunState, interface_exists
from fedward.vpn.keys import public_key_of
from fedward.vpn.layout import PeerFolder, ServerLayout
from fedward.vpn.peer_config import PeerConfig, read_peer_config
from fedward.vpn.registry import PeerRecord
from fedward.vpn.server import load_state, read_private_key
from fedward.vpn.status import PeerStatus, interface_status
from fedward.vpn.system_tools import tool_succeeds

# A live tunnel renews its session every 2 minutes (keepalive 25 s keeps traffic flowing),
# so a latest handshake older than this means the session died.
HANDSHAKE_MAX_AGE_S = 180.0
PING_ATTEMPTS = 3  # the first ping may have to wait for a handshake on a busy machine
PING_WAIT_S = 3

INTERFACE = "wireguard interface"
HANDSHAKE = "latest handshake"


def _age(peer: PeerStatus) -> float | None:
    return None if peer.latest_handshake is None else max(0.0, time.time() - peer.latest_handshake)


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


@dataclass(frozen=True)
class PeerTunnel:
    """What a peer's enrolment folder says about its tunnel."""

    folder: Path

    @property
    def config(self) -> PeerConfig:
        return read_peer_config(self.folder)

    @property
    def server_address(self) -> IPv4Address:
        """The hub's address: the first of the VPN net (10.220.0.1 in the seed's plan)."""
        return self.config.server_allowed_ips.network_address + 1

    def interface(self) -> str | None:
        state = RunState.load(PeerFolder(self.folder).run_state)
        return None if state is None else state.interface

    def public_key(self) -> str:
        try:
            return public_key_of(read_private_key(PeerFolder(self.folder).private_key))
        except (OSError, ValueError):
            return "(unreadable private.key)"


def peer_vpn_checks(folder: Path) -> list[Check]:
    tunnel = PeerTunnel(Path(folder))
    ping_name = f"ping {tunnel.server_address}"
    return [
        Check(INTERFACE, lambda: _interface_up(tunnel)),
        Check(HANDSHAKE, lambda: _peer_handshake(tunnel), needs=(INTERFACE,)),
        Check(ping_name, lambda: _ping(tunnel), needs=(INTERFACE,)),
    ]


def ping_check_name(folder: Path) -> str:
    return f"ping {PeerTunnel(Path(folder)).server_address}"


def _interface_up(tunnel: PeerTunnel) -> Outcome:
    connect = f"sudo fedward vpn connect {tunnel.folder}"
    config = tunnel.config  # a damaged config.env fails here, with its own message
    name = tunnel.interface()
    if name is None:
        return failed(f"no tunnel from {tunnel.folder} is up on this machine", connect)
    if not interface_exists(name):
        return failed(
            f"{name} (recorded in {tunnel.folder}/run.json) does not exist: rebooted?",
            f"sudo fedward vpn down {tunnel.folder} && {connect}",
        )
    return passed(f"{name} is up: {config.peer_type} {config.peer_id}, {config.address}")


def _key_fix(tunnel: PeerTunnel) -> str:
    config = tunnel.config
    key = tunnel.public_key()
    return (
        f"on the VPN server, 'fedward vpn list' must show {config.peer_type} {config.peer_id} "
        f"with key {key} (else: fedward vpn add {config.peer_type} {config.peer_id} {key}); "
        f"and UDP must reach {config.server_endpoint}"
    )


def _peer_handshake(tunnel: PeerTunnel) -> Outcome:
    if os.geteuid() != 0:
        return skipped("reading handshakes needs root: sudo fedward doctor ...")
    name = tunnel.interface()
    if name is None:  # gone since the interface row
        return failed("the tunnel went down", f"sudo fedward vpn connect {tunnel.folder}")
    peers = interface_status(name)
    if not peers:
        return failed(f"{name} has no VPN server peer", f"sudo fedward vpn down {tunnel.folder}")
    age = _age(peers[0])
    if age is None or age > HANDSHAKE_MAX_AGE_S:
        # WireGuard makes a handshake when there is traffic: a tunnel that was idle (or
        # just connected) deserves one packet before it is judged.
        tool_succeeds(["ping", "-n", "-c", "1", "-W", str(PING_WAIT_S), str(tunnel.server_address)])
        age = _age(interface_status(name)[0])
    if age is None:
        return failed("never: the VPN server has not answered this peer", _key_fix(tunnel))
    if age > HANDSHAKE_MAX_AGE_S:
        return failed(f"{_ago(age)}: the session has expired", _key_fix(tunnel))
    return passed(_ago(age))


def _ping(tunnel: PeerTunnel) -> Outcome:
    address = str(tunnel.server_address)
    for _ in range(PING_ATTEMPTS):
        if tool_succeeds(["ping", "-n", "-c", "1", "-W", str(PING_WAIT_S), address]):
            return passed(f"{address} answers through the tunnel")
    return failed(
        f"no answer from {address} after {PING_ATTEMPTS} tries",
        "see the handshake row; " + _key_fix(tunnel),
    )


# -- the server ------------------------------------------------------------------------


def server_vpn_checks(state_dir: Path) -> list[Check]:
    layout = ServerLayout(Path(state_dir))
    checks = [
        Check("server state", lambda: _server_state(layout)),
        Check(INTERFACE, lambda: _server_interface(layout), needs=("server state",)),
        Check("ip forwarding", _forwarding, needs=(INTERFACE,)),
    ]
    try:
        peers: Sequence[PeerRecord] = load_state(layout).registry.sorted_peers()
    except (OSError, ValueError):
        peers = []  # the "server state" row says why
    for record in peers:
        checks.append(
            Check(
                f"peer {record.peer_type} {record.peer_id}",
                partial(_server_peer, layout, record),
                needs=(INTERFACE,),
            )
        )
    return checks


def _server_state(layout: ServerLayout) -> Outcome:
    state = load_state(layout)
    return passed(
        f"{layout.root}: endpoint {state.settings.endpoint}, {len(state.registry.peers)} peers"
    )


def _server_interface(layout: ServerLayout) -> Outcome:
    run = RunState.load(layout.run_state)
    up = f"sudo fedward vpn --state-dir {layout.root} up"
    if run is None:
        return failed("the hub is not up ('fedward vpn up' has not run here)", up)
    if not interface_exists(run.interface):
        return failed(
            f"{run.interface} (recorded in run.json) does not exist: rebooted?",
            f"sudo fedward vpn --state-dir {layout.root} down && {up}",
        )
    return passed(f"{run.interface} is up ({run.kind} WireGuard)")


def _forwarding() -> Outcome:
    value = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    if value != "1":
        return failed(
            "IPv4 forwarding is off: peers cannot reach mqtt and restful",
            "sudo sysctl -w net.ipv4.ip_forward=1",
        )
    return passed("on")


def _server_peer(layout: ServerLayout, record: PeerRecord) -> Outcome:
    if not record.public_keys:
        return failed(
            "no key registered",
            f"on the peer: sudo fedward vpn connect FOLDER, then here: "
            f"fedward vpn add {record.peer_type} {record.peer_id} PUBLIC_KEY",
        )
    if os.geteuid() != 0:
        return skipped("reading handshakes needs root")
    run = RunState.load(layout.run_state)
    if run is None:  # gone since the interface row
        return failed("the hub went down", f"sudo fedward vpn --state-dir {layout.root} up")
    by_key = {p.public_key: p for p in interface_status(run.interface)}
    ages = [_age(by_key[k]) for k in record.public_keys if k in by_key]
    known = [a for a in ages if a is not None]
    if not known:
        return failed(
            f"{record.address}: never connected",
            "on that peer: sudo fedward vpn connect FOLDER, then fedward doctor there",
        )
    age = min(known)
    if age > HANDSHAKE_MAX_AGE_S:
        return failed(
            f"{record.address}: last handshake {_ago(age)}",
            "the peer is off or cannot reach UDP "
            f"{load_state(layout).settings.port}: run 'fedward doctor' on it",
        )
    return passed(f"{record.address}: handshake {_ago(age)}")
