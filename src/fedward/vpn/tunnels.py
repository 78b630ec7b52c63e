"""Bring tunnels up and down: the server's hub interface and a peer's connection.

``server_up``: the interface with the server address (``VPN_IP/VPN_SUBNET_PREFIX``), the
peers of ``wg0.conf``, IPv4 forwarding and the hub rules. ``connect``: a peer's interface
from its enrolment folder (key, preshared key, endpoint, allowed IPs, keepalive 25 s, MTU
1420, address). ``down`` undoes either, from the run-state file they left.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Interface
from pathlib import Path

from fedward.errors import Conflict
from fedward.storage.atomic import atomic_write_text
from fedward.storage.file_lock import exclusive_lock
from fedward.vpn.app_credentials import relocated_app_env
from fedward.vpn.hub_rules import (
    chain_name,
    enable_forwarding,
    install_hub_rules,
    remove_hub_rules,
    restore_forwarding,
)
from fedward.vpn.interface import (
    InterfaceSpec,
    RunState,
    create_interface,
    delete_interface,
    interface_exists,
    validate_interface_name,
)
from fedward.vpn.keys import generate_private_key, public_key_of
from fedward.vpn.layout import PeerFolder, ServerLayout
from fedward.vpn.peer_config import read_peer_config
from fedward.vpn.server import load_state, read_private_key
from fedward.vpn.services import relocate_broker_config
from fedward.vpn.wg_config import ClientTunnel, render_client_config

DEFAULT_INTERFACE = "wg0"


@dataclass(frozen=True)
class Connection:
    state: RunState
    public_key: str
    new_key: bool  # the key was made now: the server must still ``add`` it


def _refuse_if_up(run_state_path: Path) -> None:
    previous = RunState.load(run_state_path)
    if previous is not None and interface_exists(previous.interface):
        raise Conflict(
            f"{previous.interface} is already up ({run_state_path})",
            hint="bring it down first: fedward vpn down",
        )


def server_up(
    root: Path, *, interface: str = DEFAULT_INTERFACE, hub_rules: bool = True
) -> RunState:
    layout = ServerLayout(Path(root))
    validate_interface_name(interface)
    with exclusive_lock(layout.lock):
        _refuse_if_up(layout.run_state)
        state = load_state(layout)
        settings = state.settings
        spec = InterfaceSpec(
            name=interface,
            address=IPv4Interface(f"{settings.vpn_ip}/{settings.subnet_prefix}"),
            wg_config=layout.wg_config.read_text(encoding="utf-8"),
            prefer_kernel=settings.use_kernel_module,
        )
        run_state = create_interface(
            spec,
            log_path=layout.root / "wireguard-go.log",
            record=lambda s: s.save(layout.run_state),
        )
        try:
            run_state = replace(run_state, forwarding_was=enable_forwarding())
            run_state.save(layout.run_state)
            if hub_rules:
                run_state = replace(run_state, hub_chain=chain_name(interface))
                run_state.save(layout.run_state)  # before installing: down removes half a chain
                install_hub_rules(interface, settings.management_range)
        except BaseException:
            down(layout.run_state)
            raise
        return run_state


def connect(folder_path: Path, *, interface: str = DEFAULT_INTERFACE) -> Connection:
    """Bring up the peer's tunnel from its enrolment folder (made by ``genconf``)."""
    folder = PeerFolder(Path(folder_path))
    validate_interface_name(interface)
    config = read_peer_config(folder.path)
    _refuse_if_up(folder.run_state)
    new_key = not folder.private_key.exists()
    if new_key:
        private_key = generate_private_key()
        atomic_write_text(folder.private_key, private_key + "\n", mode=0o600)
    else:
        private_key = read_private_key(folder.private_key)
    app_env = relocated_app_env(config.peer_type, config.peer_id, folder)
    if app_env is not None:
        atomic_write_text(folder.app_env, app_env, mode=0o600)
    if config.peer_type == "management" and folder.broker_dir.is_dir():
        relocate_broker_config(folder.broker_dir)
    tunnel = ClientTunnel(
        private_key=private_key,
        server_public_key=config.server_public_key,
        preshared_key=config.server_psk,
        endpoint=config.server_endpoint,
        allowed_ips=str(config.server_allowed_ips),
    )
    spec = InterfaceSpec(
        name=interface,
        address=IPv4Interface(f"{config.address}/{config.subnet_prefix}"),
        wg_config=render_client_config(tunnel),
        prefer_kernel=config.use_kernel_module,
    )
    state = create_interface(
        spec, log_path=folder.path / "wireguard-go.log", record=lambda s: s.save(folder.run_state)
    )
    return Connection(state, public_key_of(private_key), new_key)


def down(run_state_path: Path) -> RunState | None:
    """Undo what ``server_up`` or ``connect`` recorded in ``run_state_path``; None if nothing."""
    state = RunState.load(run_state_path)
    if state is None:
        return None
    if state.hub_chain:
        remove_hub_rules(state.hub_chain, state.interface)
    if state.forwarding_was is not None:
        restore_forwarding(state.forwarding_was)
    delete_interface(state)
    run_state_path.unlink(missing_ok=True)
    return state


def server_run_state(root: Path) -> Path:
    return ServerLayout(Path(root)).run_state


def peer_run_state(folder: Path) -> Path:
    return PeerFolder(Path(folder)).run_state
