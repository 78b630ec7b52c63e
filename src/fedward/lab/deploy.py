"""``lab up`` and ``lab down``: the seed's VPN topology in network namespaces (root, Linux).

``up`` builds the private internet, creates the VPN server and every peer's enrolment
folder (``genconf --with-key``), brings the hub up, connects every peer with its folder
(nodes and the researcher from a copy, as a site would), starts Mosquitto and the upload
server on their VPN addresses, and checks that every peer pings 10.220.0.1.

Lab directory::

    lab.json            what was created (see ``state``)
    vpn/                the VPN server (mqtt and restful run from its folders, as on the
                        seed's "network" machine, so a revocation reaches them at once)
    sites/COMPONENT/ID  the copied enrolment folder of each node and the researcher
    uploads/            the upload server's blobs
    logs/               one log per process
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from fedward.broker.render import BrokerFiles
from fedward.broker.run_as import remove_copy
from fedward.errors import VpnError
from fedward.lab.netns import (
    add_namespace,
    delete_namespace,
    fedward_command,
    namespace_exists,
    pids_in,
    run_in,
    spawn_in,
    stop_process,
    succeeds_in,
    tcp_open_in,
    wait_until,
)
from fedward.lab.state import LabProcess, LabState, LabTunnel
from fedward.lab.topology import VPN_PORT, LabTopology
from fedward.vpn.enrolment import VpnServer
from fedward.vpn.interface import USERSPACE_SOCKET_DIR
from fedward.vpn.system_tools import run_tool

Progress = Callable[[str], None]
BRIDGE = "br0"
VPN_SERVER_ADDRESS = "10.220.0.1"
BROKER = ("10.220.0.2", 1883)
UPLOADS = ("10.220.0.3", 8000)
_WAIT_S = 60.0  # a handshake or a service start on a loaded 2-core machine


def _quiet(_: str) -> None:
    pass


def vpn_dir(state: LabState) -> Path:
    return state.lab_dir / "vpn"


def peer_folder(state: LabState, component: str) -> Path:
    """Where ``component`` keeps its enrolment folder."""
    peer_type, peer_id = state.topology.peer_identity(component)
    if peer_type == "management":
        return vpn_dir(state) / "config_peers" / peer_type / peer_id
    return state.lab_dir / "sites" / component / peer_id


def lab_up(lab_dir: Path, nodes: int, *, progress: Progress = _quiet) -> LabState:
    """Build the lab; on failure the state file still lists everything for ``lab_down``."""
    state = LabState.create(lab_dir, secrets.token_hex(2), nodes)
    progress("network")
    _build_internet(state)
    progress("vpn server")
    _start_vpn_server(state)
    progress("tunnels")
    for component in state.topology.peers:
        _connect(state, component)
    progress("services")
    _start_services(state)
    progress("health")
    _check_health(state)
    state.ready = True
    state.save()
    return state


def _build_internet(state: LabState) -> None:
    topology = state.topology
    internet = topology.internet_namespace
    state.record_namespace(internet)
    add_namespace(internet)
    run_tool(["ip", "-n", internet, "link", "add", BRIDGE, "type", "bridge"])
    run_tool(["ip", "-n", internet, "link", "set", BRIDGE, "up"])
    for component in topology.components:
        namespace = topology.namespace(component)
        state.record_namespace(namespace)
        add_namespace(namespace)
        port = topology.bridge_port(component)
        veth = ["eth0", "netns", namespace, "type", "veth", "peer", "name", port]
        run_tool(["ip", "link", "add", *veth, "netns", internet])
        run_tool(["ip", "-n", internet, "link", "set", port, "master", BRIDGE, "up"])
        address = str(topology.internet_address(component))
        run_tool(["ip", "-n", namespace, "address", "add", address, "dev", "eth0"])
        run_tool(["ip", "-n", namespace, "link", "set", "eth0", "up"])


def _start_vpn_server(state: LabState) -> None:
    topology = state.topology
    server = VpnServer(vpn_dir(state))
    public_addr = str(topology.internet_address("vpnserver").ip)
    server.init({"VPN_SERVER_PUBLIC_ADDR": public_addr, "VPN_SERVER_PORT": str(VPN_PORT)})
    for component in topology.peers:
        peer_type, peer_id = topology.peer_identity(component)
        server.genconf(peer_type, peer_id, with_key=True)
        if peer_type != "management":  # a site gets a copy of its folder
            source = vpn_dir(state) / "config_peers" / peer_type / peer_id
            shutil.copytree(source, peer_folder(state, component))
    namespace = topology.namespace("vpnserver")
    state.record_tunnel(LabTunnel("vpnserver", str(vpn_dir(state))))
    interface = topology.wg_interface("vpnserver")
    state_dir = str(vpn_dir(state))
    run_in(
        namespace, fedward_command("vpn", "--state-dir", state_dir, "up", "--interface", interface)
    )
    _only_vpn_port_open(namespace)


def _only_vpn_port_open(namespace: str) -> None:
    """The server's internet side answers WireGuard and nothing else."""
    rules = [
        ["-p", "udp", "--dport", str(VPN_PORT), "-j", "ACCEPT"],
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-j", "DROP"],
    ]
    for rule in rules:
        run_in(namespace, ["iptables", "-w", "-A", "INPUT", "-i", "eth0", *rule])


def _connect(state: LabState, component: str) -> None:
    folder = peer_folder(state, component)
    state.record_tunnel(LabTunnel(component, str(folder)))
    interface = state.topology.wg_interface(component)
    command = fedward_command("vpn", "connect", str(folder), "--interface", interface)
    run_in(state.topology.namespace(component), command)


def spawn_recorded(
    state: LabState,
    name: str,
    component: str,
    args: list[str],
    env: Mapping[str, str] | None = None,
) -> None:
    """Start a long-running process in ``component``'s namespace; ``lab down`` stops it."""
    log_path = state.lab_dir / "logs" / f"{name}.log"
    pid = spawn_in(state.topology.namespace(component), args, log_path, env)
    state.record_process(LabProcess(name, component, pid))


def _start_services(state: LabState) -> None:
    topology = state.topology
    broker_dir = peer_folder(state, "mqtt") / "broker"
    broker = fedward_command("broker", "run", "--config-dir", str(broker_dir))
    spawn_recorded(state, "broker", "mqtt", broker)
    tokens = peer_folder(state, "restful") / "uploads_tokens.json"
    uploads = ["uploads", "serve", "--host", UPLOADS[0], "--port", str(UPLOADS[1])]
    uploads += ["--data-dir", str(state.lab_dir / "uploads"), "--tokens", str(tokens)]
    spawn_recorded(state, "uploads", "restful", fedward_command(*uploads))
    mqtt, restful = topology.namespace("mqtt"), topology.namespace("restful")
    wait_until(partial(tcp_open_in, mqtt, *BROKER), "the broker listening", _WAIT_S)
    wait_until(partial(tcp_open_in, restful, *UPLOADS), "the upload server listening", _WAIT_S)


def _check_health(state: LabState) -> None:
    """The seed's health check: every peer pings the server through its tunnel."""
    topology = state.topology
    for component in topology.peers:
        wait_until(
            partial(pings_server, topology.namespace(component)), f"{component} pinging", _WAIT_S
        )


def pings_server(namespace: str) -> bool:
    return succeeds_in(namespace, ["ping", "-c", "1", "-W", "1", VPN_SERVER_ADDRESS])


def lab_down(lab_dir: Path, *, keep_files: bool = False) -> list[str]:
    """Undo everything ``lab_up`` recorded, even after a failed ``up``; return what failed."""
    state = LabState.load(lab_dir)
    topology = state.topology
    problems: list[str] = []
    for process in reversed(state.processes):
        stop_process(process.pid, topology.namespace(process.component))
    # The copy of the broker's files its own account reads (``fedward broker run`` as root).
    remove_copy(BrokerFiles.in_dir(peer_folder(state, "mqtt") / "broker"))
    for tunnel in reversed(state.tunnels):
        namespace = topology.namespace(tunnel.component)
        if not namespace_exists(namespace):
            continue
        args = ["vpn", "down", tunnel.folder]
        if tunnel.component == "vpnserver":
            args = ["vpn", "--state-dir", tunnel.folder, "down"]
        try:
            run_in(namespace, fedward_command(*args))
        except VpnError as exc:
            problems.append(str(exc))
    for namespace in reversed(state.namespaces):
        for pid in pids_in(namespace):
            stop_process(pid, namespace)
        try:
            delete_namespace(namespace)
        except VpnError as exc:
            problems.append(str(exc))
    _remove_stale_sockets(topology)
    if not keep_files and not problems:
        shutil.rmtree(state.lab_dir, ignore_errors=True)
    return problems


def _remove_stale_sockets(topology: LabTopology) -> None:
    """A killed wireguard-go leaves its socket behind; the lab's names are its own."""
    for component in ["vpnserver", *topology.peers]:
        socket = USERSPACE_SOCKET_DIR / f"{topology.wg_interface(component)}.sock"
        socket.unlink(missing_ok=True)
