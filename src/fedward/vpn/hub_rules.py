"""The hub's forwarding policy on the VPN server (iptables, in the server's network namespace).

The server routes between peers, so without rules any peer reaches any other (a hole in
the seed). The policy, for traffic that enters or leaves the WireGuard interface:

    peer  -> management (mqtt, restful)     forwarded
    management -> peer                      forwarded
    node <-> node, node <-> researcher      dropped
    anything between the tunnel and another interface (the internet side)   dropped

so a node can reach the broker and the upload server but no other node, and nothing from
outside the tunnel can be routed into it. The server's own address (``INPUT``) is not
affected: peers keep pinging it as a health check.

The rules sit in a chain of their own, hooked into ``FORWARD``, so ``down`` removes exactly
what ``up`` added.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

from fedward.vpn.system_tools import require_tool, run_tool, tool_succeeds

_FORWARDING = Path("/proc/sys/net/ipv4/ip_forward")


def chain_name(interface: str) -> str:
    return f"FEDWARD-{interface}"  # iptables chain names allow 28 characters; ifnames 15


def _hooks(interface: str, chain: str) -> list[list[str]]:
    return [["FORWARD", "-i", interface, "-j", chain], ["FORWARD", "-o", interface, "-j", chain]]


def install_hub_rules(interface: str, management: IPv4Network) -> str:
    """Install the policy for ``interface`` in chain ``chain_name(interface)``; return its name."""
    iptables = require_tool("iptables", "iptables")
    chain = chain_name(interface)
    remove_hub_rules(chain, interface)
    run_tool([iptables, "-w", "-N", chain])
    tunnel = ["-i", interface, "-o", interface]
    run_tool([iptables, "-w", "-A", chain, *tunnel, "-s", str(management), "-j", "ACCEPT"])
    run_tool([iptables, "-w", "-A", chain, *tunnel, "-d", str(management), "-j", "ACCEPT"])
    run_tool([iptables, "-w", "-A", chain, "-j", "DROP"])
    for hook in _hooks(interface, chain):
        run_tool([iptables, "-w", "-I", *hook])
    return chain


def remove_hub_rules(chain: str, interface: str) -> None:
    """Remove the chain and its hooks; anything already gone is skipped."""
    for hook in _hooks(interface, chain):
        while tool_succeeds(["iptables", "-w", "-C", *hook]):
            run_tool(["iptables", "-w", "-D", *hook])
    if tool_succeeds(["iptables", "-w", "-n", "-L", chain]):
        run_tool(["iptables", "-w", "-F", chain])
        run_tool(["iptables", "-w", "-X", chain])


def enable_forwarding() -> str:
    """Turn IPv4 forwarding on (this network namespace); return the previous value."""
    previous = _FORWARDING.read_text(encoding="ascii").strip()
    if previous != "1":
        _FORWARDING.write_text("1\n", encoding="ascii")
    return previous


def restore_forwarding(previous: str) -> None:
    # Skip a write that changes nothing: /proc/sys is read-only in a container.
    if previous in {"0", "1"} and _FORWARDING.read_text(encoding="ascii").strip() != previous:
        _FORWARDING.write_text(f"{previous}\n", encoding="ascii")
