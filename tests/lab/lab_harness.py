"""``Lab``: what a lab test needs to act inside the lab's namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fedward.lab.deploy import peer_folder
from fedward.lab.state import LabState
from fedward.vpn.peer_config import read_peer_config

PROBE = Path(__file__).with_name("lab_probe.py")


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

    def tcp_open(self, component: str, host: str, port: int) -> bool:
        return self.succeeds(
            component, "timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"
        )

    def vpn_address(self, component: str) -> str:
        return str(read_peer_config(peer_folder(self.state, component)).address)

    def env_file(self, component: str) -> Path:
        return peer_folder(self.state, component) / "fedward.env"

    def probe(self, component: str, *args: str) -> dict[str, object]:
        """Run the probe in ``component``'s namespace with its own settings; its JSON answer."""
        done = self.run(
            component, sys.executable, str(PROBE), args[0], str(self.env_file(component)), *args[1:]
        )
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
