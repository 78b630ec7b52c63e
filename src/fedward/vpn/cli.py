"""``fedward vpn``: the seed's ``configure_peer`` commands plus server and tunnel control.

On the server::

    fedward vpn server init --public-addr vpn.example.org   # also enrols mqtt and restful
    fedward vpn up
    fedward vpn genconf --with-key node node1                # -> config_peers/node/node1/

On a site, with the copied folder::

    fedward vpn connect node1/
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from fedward.errors import NotFound
from fedward.vpn.enrolment import Outcome, VpnServer
from fedward.vpn.interface import RunState
from fedward.vpn.peer_config import read_peer_config
from fedward.vpn.settings import parse_peer_type
from fedward.vpn.status import format_peer_list, format_status, interface_status, peer_names
from fedward.vpn.tunnels import (
    DEFAULT_INTERFACE,
    connect,
    down,
    peer_run_state,
    server_run_state,
    server_up,
)

DEFAULT_STATE_DIR = Path("~/.fedward/vpn")


@dataclass(frozen=True)
class VpnContext:
    state_dir: Path

    def server(self) -> VpnServer:
        return VpnServer(self.state_dir)


def _echo(outcome: Outcome) -> None:
    for message in outcome.messages:
        click.echo(message)


_STATE_DIR_HELP = "The VPN server's directory (env FEDWARD_VPN_DIR)."


def _state_dir_here(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.obj = VpnContext(value.expanduser())


def state_dir_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--state-dir`` after the sub-command too (``fedward vpn list --state-dir D``), where
    a newcomer types it; it overrides the one given to ``fedward vpn``."""
    return click.option(
        "--state-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_state_dir_here,
        help=_STATE_DIR_HELP,
    )(command)


@click.group()
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="FEDWARD_VPN_DIR",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help=_STATE_DIR_HELP,
)
@click.pass_context
def vpn(ctx: click.Context, state_dir: Path) -> None:
    """WireGuard VPN: server, peers, interfaces (the seed's vpnserver and configure_peer)."""
    ctx.obj = VpnContext(state_dir.expanduser())


@vpn.group()
def server() -> None:
    """Create or update the VPN server."""


_SETTING_OPTIONS = {
    "public_addr": "VPN_SERVER_PUBLIC_ADDR",
    "port": "VPN_SERVER_PORT",
    "vpn_ip": "VPN_IP",
    "subnet_prefix": "VPN_SUBNET_PREFIX",
    "management_range": "VPN_MANAGEMENT_IP_ASSIGN",
    "node_range": "VPN_NODE_IP_ASSIGN",
    "researcher_range": "VPN_RESEARCHER_IP_ASSIGN",
    "use_kernel_module": "USE_WG_KERNEL_MOD",
}


@server.command("init")
@click.option("--public-addr", envvar="VPN_SERVER_PUBLIC_ADDR", help="Host or IP peers connect to.")
@click.option("--port", envvar="VPN_SERVER_PORT", help="UDP port  [default: 51820]")
@click.option("--vpn-ip", envvar="VPN_IP", help="Server address in the VPN  [default: 10.220.0.1]")
@click.option("--subnet-prefix", envvar="VPN_SUBNET_PREFIX", help="VPN net prefix  [default: 14]")
@click.option(
    "--management-range", envvar="VPN_MANAGEMENT_IP_ASSIGN", help="[default: 10.220.0.0/16]"
)
@click.option("--node-range", envvar="VPN_NODE_IP_ASSIGN", help="[default: 10.221.0.0/16]")
@click.option(
    "--researcher-range", envvar="VPN_RESEARCHER_IP_ASSIGN", help="[default: 10.222.0.0/16]"
)
@click.option(
    "--use-kernel-module",
    envvar="USE_WG_KERNEL_MOD",
    type=click.Choice(["true", "false"]),
    help="Try kernel WireGuard before wireguard-go  [default: true]",
)
@state_dir_option
@click.pass_obj
def server_init(obj: VpnContext, **options: str | None) -> None:
    """Create the server (keys, settings, the mqtt and restful peers), or update its settings.

    Every option also reads the seed's VPN_* variable; unset ones keep their current value.
    """
    overrides = {_SETTING_OPTIONS[k]: v for k, v in options.items() if v is not None}
    _echo(obj.server().init(overrides))


@vpn.command()
@click.argument("peer_type", metavar="TYPE")
@click.argument("peer_id", metavar="ID")
@click.option("--with-key", is_flag=True, help="Also create and register the peer's key pair.")
@state_dir_option
@click.pass_obj
def genconf(obj: VpnContext, peer_type: str, peer_id: str, with_key: bool) -> None:
    """Create the enrolment folder of a peer (TYPE: management, node or researcher)."""
    _echo(obj.server().genconf(parse_peer_type(peer_type), peer_id, with_key=with_key))


@vpn.command()
@click.argument("peer_type", metavar="TYPE")
@click.argument("peer_id", metavar="ID")
@click.argument("public_key", metavar="PUBKEY")
@state_dir_option
@click.pass_obj
def add(obj: VpnContext, peer_type: str, peer_id: str, public_key: str) -> None:
    """Register a peer's public key (as printed by 'fedward vpn connect' or 'wg pubkey')."""
    _echo(obj.server().add(parse_peer_type(peer_type), peer_id, public_key))


@vpn.command()
@click.argument("peer_type", metavar="TYPE")
@click.argument("peer_id", metavar="ID")
@state_dir_option
@click.pass_obj
def remove(obj: VpnContext, peer_type: str, peer_id: str) -> None:
    """Unregister a peer's keys; keep its folder so that a new key can be added."""
    _echo(obj.server().remove(parse_peer_type(peer_type), peer_id))
    click.echo(format_peer_list(obj.server().peers()))


@vpn.command()
@click.argument("peer_type", metavar="TYPE")
@click.argument("peer_id", metavar="ID")
@state_dir_option
@click.pass_obj
def removeconf(obj: VpnContext, peer_type: str, peer_id: str) -> None:
    """Remove a peer and its folder (same as revoke)."""
    _echo(obj.server().removeconf(parse_peer_type(peer_type), peer_id))
    click.echo(format_peer_list(obj.server().peers()))


@vpn.command()
@click.argument("peer_type", metavar="TYPE")
@click.argument("peer_id", metavar="ID")
@state_dir_option
@click.pass_obj
def revoke(obj: VpnContext, peer_type: str, peer_id: str) -> None:
    """Revoke a peer: WireGuard keys, broker account and upload token, in one step."""
    _echo(obj.server().revoke(parse_peer_type(peer_type), peer_id))


@vpn.command("list")
@state_dir_option
@click.pass_obj
def list_peers(obj: VpnContext) -> None:
    """The peers: type, id, address and registered public keys."""
    click.echo(format_peer_list(obj.server().peers()))


@vpn.command()
@click.option("--interface", default=DEFAULT_INTERFACE, show_default=True)
@click.option(
    "--hub-rules/--no-hub-rules",
    default=True,
    show_default=True,
    help="Drop node<->node and node<->researcher forwarding.",
)
@state_dir_option
@click.pass_obj
def up(obj: VpnContext, interface: str, hub_rules: bool) -> None:
    """Bring the server's interface up (root)."""
    state = server_up(obj.state_dir, interface=interface, hub_rules=hub_rules)
    click.echo(f"{state.interface} is up ({state.kind} WireGuard)")


@vpn.command("connect")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--interface", default=DEFAULT_INTERFACE, show_default=True)
def connect_command(folder: Path, interface: str) -> None:
    """Connect this machine with an enrolment folder (root)."""
    connection = connect(folder, interface=interface)
    click.echo(f"{connection.state.interface} is up ({connection.state.kind} WireGuard)")
    click.echo(f"public key: {connection.public_key}")
    if connection.new_key:
        click.echo(
            "register it on the VPN server: fedward vpn add TYPE ID " + connection.public_key
        )
    if (folder / "fedward.env").exists():
        click.echo(f"settings for the node/researcher: set -a; . {folder / 'fedward.env'}; set +a")


def _run_state_path(obj: VpnContext, folder: Path | None) -> Path:
    return peer_run_state(folder) if folder else server_run_state(obj.state_dir)


@vpn.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
@state_dir_option
@click.pass_obj
def status(obj: VpnContext, folder: Path | None) -> None:
    """Each peer's latest handshake and transfer (the server's, or FOLDER's connection)."""
    state = RunState.load(_run_state_path(obj, folder))
    if state is None:
        raise NotFound(
            "no tunnel is up here", hint="'fedward vpn up' on the server, 'connect' on a peer"
        )
    if folder:
        names = {read_peer_config(folder).server_public_key: "vpn server"}
    else:
        names = peer_names(obj.server().peers())
    click.echo(f"interface {state.interface} ({state.kind})")
    click.echo(format_status(interface_status(state.interface), names))


@vpn.command("down")
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
@state_dir_option
@click.pass_obj
def down_command(obj: VpnContext, folder: Path | None) -> None:
    """Remove what 'up' (or 'connect FOLDER') made: interface, process, rules."""
    state = down(_run_state_path(obj, folder))
    click.echo("nothing to bring down" if state is None else f"{state.interface} is down")
