"""Run the real GUI for tests: ``fedward gui adduser`` and ``fedward gui serve`` as processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORDS = {
    "alice": "correct-horse-battery-1",
    "paula": "staple-moon-orchid-22",
    "victor": "quiet-river-lantern-333",
}
ROLES = {"alice": "admin", "paula": "approver", "victor": "viewer"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_node_config(
    state_dir: Path, data_root: Path, node_id: str = "hospital1", uploads_url: str = ""
) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    config = state_dir / "node.toml"
    config.write_text(
        f'node_id = "{node_id}"\nstate_dir = "{state_dir}"\ndata_root = "{data_root}"\n'
        # Nothing listens there: the dashboard must show both peers unreachable.
        f'[broker]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        f'[uploads]\nurl = "{uploads_url or f"http://127.0.0.1:{free_port()}"}"\n'
    )
    return config


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    prefixes = (
        *("MQTT_", "UPLOADS_", "NODE_ID", "FEDWARD_", "ENABLE_TRAINING", "ALLOW_DEFAULT"),
        "GUI_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra or {})
    return env


def add_user(config: Path, username: str, role: str, password: str, workdir: Path) -> None:
    password_file = workdir / f"{username}.password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedward.cli",
            "gui",
            "adduser",
            username,
            "--role",
            role,
            "--password-file",
            str(password_file),
            "--config",
            str(config),
        ],
        check=False,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"adduser {username} failed: {done.stderr}")


@dataclass
class GuiProcess:
    config: Path
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    scheme: str = "http"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> GuiProcess:
        self.port = free_port()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fedward.cli",
                    "gui",
                    "serve",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(self.env),
            )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the GUI exited: {self.log_file.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=1, context=context):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(
            f"the GUI did not answer at {self.url}/login within {timeout_s:.0f} s: "
            f"{self.log_file.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def client_from(gui: GuiProcess, address: str, timeout_s: float = 30) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is local)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=gui.url, transport=transport, timeout=timeout_s)


def hidden(page: httpx.Response, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    form = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "login_token": hidden(form, "login_token"),
            "next": "/",
        },
    )
