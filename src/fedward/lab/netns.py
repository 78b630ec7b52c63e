"""Network namespaces and the processes in them (``ip netns``), for the lab.

A process is only ever signalled after ``ip netns identify`` confirmed that it runs in a
namespace the lab created, so ``down`` cannot touch anything else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fedward.errors import VpnError
from fedward.vpn.system_tools import run_tool, tool_succeeds


def in_namespace(namespace: str, args: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *args]


def fedward_command(*args: str) -> list[str]:
    """``fedward ARGS`` with this interpreter, so the lab needs no ``fedward`` on PATH."""
    return [sys.executable, "-m", "fedward.cli", *args]


def run_in(
    namespace: str,
    args: Sequence[str],
    *,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> str:
    return run_tool(in_namespace(namespace, args), timeout_s=timeout_s, env=env)


def succeeds_in(namespace: str, args: Sequence[str]) -> bool:
    return tool_succeeds(in_namespace(namespace, args))


def namespace_exists(namespace: str) -> bool:
    return Path("/run/netns", namespace).exists()


def add_namespace(namespace: str) -> None:
    run_tool(["ip", "netns", "add", namespace])
    run_tool(["ip", "-n", namespace, "link", "set", "lo", "up"])


def delete_namespace(namespace: str) -> None:
    if namespace_exists(namespace):
        run_tool(["ip", "netns", "delete", namespace])


def pids_in(namespace: str) -> list[int]:
    if not namespace_exists(namespace):
        return []
    return [int(pid) for pid in run_tool(["ip", "netns", "pids", namespace]).split()]


def namespace_of(pid: int) -> str | None:
    try:
        return run_tool(["ip", "netns", "identify", str(pid)]).strip() or None
    except VpnError:
        return None  # the process is gone


def spawn_in(
    namespace: str,
    args: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``args`` in ``namespace`` in the background; return its pid (``ip`` execs it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            in_namespace(namespace, args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    return process.pid


def stop_process(pid: int, namespace: str, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, a process that runs in ``namespace``; anything else is left alone."""
    if namespace_of(pid) != namespace:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    return
            if namespace_of(pid) != namespace:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    """Poll ``check()`` until it is true; ``VpnError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise VpnError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.1)


def tcp_open_in(namespace: str, host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection from inside ``namespace``."""
    probe = f"exec 3<>/dev/tcp/{host}/{port}"
    return succeeds_in(namespace, ["timeout", "2", "bash", "-c", probe])
