"""Create and delete a WireGuard interface: kernel module when available, else ``wireguard-go``.

``wireguard-go`` runs in the foreground of its own session (``WG_PROCESS_FOREGROUND``), so
its process id is known and recorded; ``down`` deletes the link (which ends the process)
and then ends the recorded process if it is still there. Its control socket lives in
``/var/run/wireguard/NAME.sock`` for every network namespace alike, so userspace interface
names must be unique on the machine, not only in their namespace.

Everything created is recorded in a run-state file *as soon as it exists*, so ``down``
can undo a half-finished ``up``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any, Literal

from fedward.errors import Conflict, ValidationError, VpnError
from fedward.storage.atomic import atomic_write_text
from fedward.vpn.system_tools import require_tool, run_tool, tool_succeeds
from fedward.vpn.wg_config import MTU

USERSPACE_SOCKET_DIR = Path("/var/run/wireguard")
_IFNAME = re.compile(r"^[A-Za-z0-9_-]{1,15}$")
_START_WAIT_S = 30.0  # wireguard-go on a loaded machine

InterfaceKind = Literal["kernel", "userspace"]


def validate_interface_name(name: str) -> str:
    if not _IFNAME.fullmatch(name):
        raise ValidationError(
            f"invalid interface name {name!r}", hint="1 to 15 letters, digits, '_' or '-'"
        )
    return name


@dataclass(frozen=True)
class RunState:
    """What ``up``/``connect`` made; enough for ``down`` to undo it."""

    interface: str
    kind: InterfaceKind
    pid: int | None = None
    forwarding_was: str | None = None
    hub_chain: str | None = None

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n", mode=0o600)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise VpnError(f"the run state {path} is damaged: {exc}") from exc


@dataclass(frozen=True)
class InterfaceSpec:
    name: str
    address: IPv4Interface
    wg_config: str  # ``wg setconf`` text; holds the private key, so it is passed on stdin
    prefer_kernel: bool
    mtu: int = MTU


def interface_exists(name: str) -> bool:
    return tool_succeeds(["ip", "link", "show", "dev", name])


def _start_userspace(name: str, log_path: Path) -> int:
    binary = require_tool("wireguard-go", "wireguard-go")
    if not Path("/dev/net/tun").exists():
        raise VpnError("/dev/net/tun is missing, so wireguard-go cannot create an interface")
    if (USERSPACE_SOCKET_DIR / f"{name}.sock").exists():
        raise Conflict(
            f"a wireguard-go interface named {name} already runs on this machine",
            hint="pick another --interface name",
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [binary, name],
            env={"WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "error"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives this command, like a daemon
        )
    deadline = time.monotonic() + _START_WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-500:]
            raise VpnError(f"wireguard-go exited with status {process.returncode}: {tail.strip()}")
        if (USERSPACE_SOCKET_DIR / f"{name}.sock").exists() and interface_exists(name):
            return process.pid
        time.sleep(0.05)
    _end_process(process.pid)
    raise VpnError(f"wireguard-go did not create {name} within {_START_WAIT_S:.0f} s")


def create_interface(
    spec: InterfaceSpec, *, log_path: Path, record: Callable[[RunState], None]
) -> RunState:
    """Create and configure the interface; ``record`` is called as soon as it exists."""
    validate_interface_name(spec.name)
    require_tool("wg", "wireguard-tools")
    if interface_exists(spec.name):
        raise Conflict(
            f"interface {spec.name} already exists", hint="bring it down first: fedward vpn down"
        )
    state: RunState | None = None
    if spec.prefer_kernel and tool_succeeds(["ip", "link", "add", spec.name, "type", "wireguard"]):
        state = RunState(spec.name, "kernel")
    else:
        state = RunState(spec.name, "userspace", pid=_start_userspace(spec.name, log_path))
    record(state)
    try:
        run_tool(["wg", "setconf", spec.name, "/dev/stdin"], input_text=spec.wg_config)
        run_tool(["ip", "address", "add", str(spec.address), "dev", spec.name])
        run_tool(["ip", "link", "set", "dev", spec.name, "mtu", str(spec.mtu), "up"])
    except VpnError:
        delete_interface(state)
        raise
    return state


def sync_config(name: str, wg_config_path: Path) -> None:
    """Apply a changed config file to a live interface without dropping other peers' sessions."""
    run_tool(["wg", "syncconf", name, str(wg_config_path)])


def _is_wireguard_go(pid: int, name: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(arg.endswith(b"wireguard-go") for arg in argv) and name.encode() in argv


def _end_process(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    return
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def delete_interface(state: RunState) -> None:
    """Delete the interface and end its wireguard-go process; missing pieces are fine."""
    if interface_exists(state.interface):
        run_tool(["ip", "link", "del", "dev", state.interface])
    if state.pid is not None and _is_wireguard_go(state.pid, state.interface):
        _end_process(state.pid)
    if state.kind == "userspace":
        with contextlib.suppress(FileNotFoundError):
            socket = USERSPACE_SOCKET_DIR / f"{state.interface}.sock"
            if state.pid is None or not _is_wireguard_go(state.pid, state.interface):
                socket.unlink()
