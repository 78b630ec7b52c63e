"""Running the system tools the VPN needs (``ip``, ``wg``, ``iptables``, ``wireguard-go``).

Arguments are always a list (never a shell line), and a failure becomes a ``VpnError``
that quotes the tool's own message, once, at this boundary.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence

from fedward.errors import VpnError


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise VpnError(f"'{name}' is not installed", hint=f"install the {package} package")
    return path


def run_tool(
    args: Sequence[str],
    *,
    input_text: str | None = None,
    timeout_s: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``args``; return its standard output, or raise ``VpnError`` with its message."""
    try:
        done = subprocess.run(
            list(args),
            input=input_text,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise VpnError(f"'{args[0]}' is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise VpnError(f"'{' '.join(args)}' did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise VpnError(f"'{' '.join(args)}' failed: {message}")
    return done.stdout


def tool_succeeds(args: Sequence[str]) -> bool:
    """Whether ``args`` exits with status 0 (its output is discarded)."""
    try:
        done = subprocess.run(list(args), capture_output=True, timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
