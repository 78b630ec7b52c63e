"""The lab's network: tunnels, the hub's forwarding rules, and what the internet can reach."""

from __future__ import annotations

import pytest
from lab_harness import Lab

from fedward.lab.deploy import BROKER, UPLOADS, VPN_SERVER_ADDRESS
from fedward.vpn.status import interface_status

pytestmark = pytest.mark.root


def test_every_peer_has_a_handshake_with_the_server(lab: Lab) -> None:
    topology = lab.state.topology
    server = interface_status(topology.wg_interface("vpnserver"))
    assert len(server) == len(topology.peers)
    assert all(peer.latest_handshake for peer in server)
    for component in topology.peers:
        (peer,) = interface_status(topology.wg_interface(component))
        assert peer.latest_handshake, component
        assert peer.allowed_ips == "10.220.0.0/14"


def test_every_peer_pings_the_server_through_its_tunnel(lab: Lab) -> None:
    for component in lab.state.topology.peers:
        assert lab.pings(component, VPN_SERVER_ADDRESS), f"{component} does not reach the server"


def test_interfaces_carry_the_seed_settings(lab: Lab) -> None:
    link = lab.run(
        "node1", "ip", "-o", "address", "show", "dev", lab.state.topology.wg_interface("node1")
    ).stdout
    assert f"{lab.vpn_address('node1')}/14" in link
    mtu = lab.run(
        "node1", "ip", "link", "show", "dev", lab.state.topology.wg_interface("node1")
    ).stdout
    assert "mtu 1420" in mtu
    dump = lab.run(
        "node1", "wg", "show", lab.state.topology.wg_interface("node1"), "persistent-keepalive"
    ).stdout
    assert dump.split()[-1] == "25"


def test_a_node_cannot_reach_another_node_or_the_researcher(lab: Lab) -> None:
    for target in ("node2", "researcher"):
        address = lab.vpn_address(target)
        assert not lab.succeeds("node1", "ping", "-c", "2", "-W", "1", address), target
    assert not lab.succeeds("researcher", "ping", "-c", "1", "-W", "1", lab.vpn_address("node1"))


def test_nodes_and_the_researcher_reach_the_broker_and_the_upload_server(lab: Lab) -> None:
    for component in ("researcher", "node1", "node2", "node3"):
        assert lab.tcp_open(component, *BROKER), component
        assert lab.tcp_open(component, *UPLOADS), component


def test_the_outside_cannot_reach_the_broker_or_the_upload_server(lab: Lab) -> None:
    server = str(lab.state.topology.internet_address("vpnserver").ip)
    # Even an attacker that routes the VPN net through the server gets nothing through.
    lab.run("outside", "ip", "route", "replace", "10.220.0.0/14", "via", server, check=True)
    try:
        assert not lab.tcp_open("outside", *BROKER)
        assert not lab.tcp_open("outside", *UPLOADS)
        assert not lab.succeeds("outside", "ping", "-c", "1", "-W", "1", VPN_SERVER_ADDRESS)
    finally:
        lab.run("outside", "ip", "route", "del", "10.220.0.0/14", check=True)
    # On their internet addresses the broker and the upload server do not listen at all.
    for component, port in (("mqtt", BROKER[1]), ("restful", UPLOADS[1])):
        address = str(lab.state.topology.internet_address(component).ip)
        assert not lab.tcp_open("outside", address, port)


def test_only_the_wireguard_port_of_the_server_is_open_to_the_internet(lab: Lab) -> None:
    server = str(lab.state.topology.internet_address("vpnserver").ip)
    assert lab.succeeds(
        "outside",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        str(lab.state.topology.internet_address("node1").ip),
    )
    assert not lab.succeeds("outside", "ping", "-c", "1", "-W", "1", server)
    assert not lab.tcp_open("outside", server, 22)
