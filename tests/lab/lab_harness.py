"""``Lab``: what a lab test needs to act inside the lab's namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.waiting import LOADED_MACHINE_S, eventually

from fedward.lab.deploy import peer_folder
from fedward.lab.state import LabState
from fedward.vpn.peer_config import read_peer_config

PROBE = Path(__file__).with_name("lab_probe.py")
REACHABLE_S = LOADED_MACHINE_S


@dataclass
class Lab:
    state: LabState

    def namespace(self, component: str) -> str:
        return self.state.topology.namespace(component)

    def run(
        self, component: str, *args: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        command = ["ip", "netns", "exec", self.namespace(component), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check)

    def succeeds(self, component: str, *args: str) -> bool:
        return self.run(component, *args).returncode == 0

    def pings(self, component: str, address: str, timeout_s: float = REACHABLE_S) -> bool:
        """Whether ``component`` gets an answer from ``address`` within ``timeout_s``: the
        first packets may wait for a handshake, which a loaded machine can take long to make."""
        return eventually(
            lambda: self.succeeds(component, "ping", "-n", "-c", "1", "-W", "2", address),
            timeout_s,
            interval_s=0.2,
        )

    def tcp_open(self, component: str, host: str, port: int) -> bool:
        return self.succeeds(
            component, "timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"
        )

    def vpn_address(self, component: str) -> str:
        return str(read_peer_config(peer_folder(self.state, component)).address)

    def env_file(self, component: str) -> Path:
        return peer_folder(self.state, component) / "fedward.env"

    def probe(
        self, component: str, *args: str, settings_of: str | None = None
    ) -> dict[str, object]:
        """Run the probe in ``component``'s namespace with the settings of ``settings_of``
        (by default its own); return its JSON answer."""
        env_file = self.env_file(settings_of or component)
        done = self.run(component, sys.executable, str(PROBE), args[0], str(env_file), *args[1:])
        assert done.returncode == 0, done.stderr
        answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    def probe_process(self, component: str, *args: str) -> subprocess.Popen[str]:
        command = ["ip", "netns", "exec", self.namespace(component), sys.executable, str(PROBE)]
        return subprocess.Popen(
            [*command, args[0], str(self.env_file(component)), *args[1:]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )


def leftovers(prefix: str, lab_dir: Path) -> list[str]:
    """Namespaces, wireguard-go sockets and processes of a lab: names that start with
    ``prefix``, processes with such a name or a path in ``lab_dir`` in their command line."""
    found = [n.split()[0] for n in run_lines(["ip", "netns", "list"]) if n.startswith(prefix)]
    sockets = Path("/var/run/wireguard")
    if sockets.is_dir():
        found += [str(p) for p in sockets.glob(f"{prefix}*")]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(prefix.encode()) or str(lab_dir).encode() in arg for arg in argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def run_lines(command: list[str]) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
