"""SIGTERM ends a ``fedward`` command together with the server it started (TensorBoard here),
and the sender still sees "killed by SIGTERM"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fedward.broker.process import free_port

STARTUP_S = 120.0  # TensorBoard imports TensorFlow's stubs: slow on a loaded 2-core machine
GONE_S = 30.0


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "fedward researcher tensorboard exited early"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise AssertionError(f"TensorBoard did not answer at {url} within {STARTUP_S:.0f} s")


def test_researcher_tensorboard_leaves_no_process_after_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RESEARCHER_HOST"}
    command = [sys.executable, "-m", "fedward.cli", "researcher", "tensorboard"]
    server = subprocess.Popen(
        [*command, "--logdir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/data/runs", server)
        children = _children(server.pid)
        assert children, "TensorBoard should run as a child of the fedward command"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=GONE_S) == -signal.SIGTERM
        deadline = time.monotonic() + GONE_S
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if _alive(c)], "TensorBoard outlived fedward"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
