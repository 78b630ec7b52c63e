"""Running a broker for tests, the demo and benchmarks: ``start_broker``.

``start_broker`` renders a configuration directory for the given peers and starts
Mosquitto on it, or the embedded Python broker when Mosquitto is not installed (or
when asked). Either way the caller gets a :class:`RunningBroker`: ``host``, ``port``,
``stop()``, ``reload()`` (re-read passwords and ACL) and ``restart()`` (same port).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from fedward.broker.embedded import EmbeddedBroker
from fedward.broker.peers import BrokerPeer
from fedward.broker.render import BrokerFiles, read_broker_settings, render_broker_config
from fedward.broker.run_as import copy_for_account, needs_copy, remove_copy
from fedward.config.model import DEFAULT_MAX_MESSAGE_BYTES, BrokerEndpoint, Secret
from fedward.errors import TransportError

BrokerKind = Literal["mosquitto", "embedded"]
LOG_NAME = "broker.log"
# Debian and others install mosquitto in sbin, which is often not on a user's PATH.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_PORT_ATTEMPTS = 5


def find_mosquitto() -> str | None:
    """Path of the ``mosquitto`` executable: PATH first, then the sbin directories."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=os.pathsep.join(_SBIN_DIRS))


class RunningBroker:
    """A started broker; ``kind`` says which one."""

    kind: BrokerKind

    def __init__(self, files: BrokerFiles) -> None:
        self.files = files
        settings = read_broker_settings(files.conf)
        self.host = settings.host
        self.port = settings.port

    @property
    def embedded(self) -> bool:
        return self.kind == "embedded"

    def endpoint(self, username: str, password: str, keepalive_s: int = 30) -> BrokerEndpoint:
        """Where and how a peer connects to this broker."""
        return BrokerEndpoint(self.host, self.port, username, Secret(password), keepalive_s)

    def start(self) -> None:
        """Serve; returns once the port accepts connections, TransportError otherwise."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def reload(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Stop, then start again on the same port (clients see a broker restart)."""
        self.stop()
        self.start()

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MosquittoProcess(RunningBroker):
    """``mosquitto -c DIR/mosquitto.conf`` as a child process, logging to ``DIR/broker.log``."""

    kind: BrokerKind = "mosquitto"

    def __init__(self, config_dir: Path, executable: str | None = None) -> None:
        super().__init__(BrokerFiles.in_dir(config_dir))
        found = executable or find_mosquitto()
        if found is None:
            raise TransportError(
                "mosquitto is not installed", hint="install the 'mosquitto' package"
            )
        self.executable = found
        self.log_path = self.files.conf.parent / LOG_NAME
        self._process: subprocess.Popen[bytes] | None = None
        # Started by root, Mosquitto reads a copy its own account can read (see run_as).
        self._copied = needs_copy(read_broker_settings(self.files.conf).user)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout_s: float = 30.0) -> None:
        conf = copy_for_account(self.files).conf if self._copied else self.files.conf
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.executable, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self._process
        deadline = time.monotonic() + timeout_s
        while not _accepts(self.host, self.port):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TransportError(
                    f"mosquitto did not start on {self.host}:{self.port}: {self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._copied:
            remove_copy(self.files)

    def kill(self) -> None:
        """Vanish like a crashed broker (SIGKILL)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files."""
        if self._process is None or self._process.poll() is not None:
            raise TransportError("mosquitto is not running; cannot reload it")
        if self._copied:
            copy_for_account(self.files)
        self._process.send_signal(signal.SIGHUP)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


class EmbeddedBrokerThread(RunningBroker):
    """The embedded broker serving from a thread of this process."""

    kind: BrokerKind = "embedded"

    def __init__(self, config_dir: Path) -> None:
        super().__init__(BrokerFiles.in_dir(config_dir))
        self._broker: EmbeddedBroker | None = None

    def start(self) -> None:
        broker = EmbeddedBroker(read_broker_settings(self.files.conf))
        broker.start()
        self._broker = broker

    def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.stop()

    def reload(self) -> None:
        if self._broker is None:
            raise TransportError("the embedded broker is not running; cannot reload it")
        self._broker.reload()


def start_broker(
    peers: Sequence[BrokerPeer],
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    embedded: bool | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> RunningBroker:
    """Render ``workdir`` for ``peers`` and start a broker on it.

    ``embedded``: True for the embedded broker, False for Mosquitto (TransportError if it
    is not installed), None for Mosquitto when installed and the embedded one otherwise.
    ``port=0`` picks a free port (retrying if another process takes it first).
    """
    use_embedded = embedded if embedded is not None else find_mosquitto() is None
    attempt = 1
    while True:
        chosen = port or free_port(host)
        render_broker_config(peers, workdir, host, chosen, max_message_bytes)
        broker: RunningBroker
        broker = EmbeddedBrokerThread(workdir) if use_embedded else MosquittoProcess(workdir)
        try:
            broker.start()
        except TransportError:
            if port or attempt >= _PORT_ATTEMPTS:
                raise
            attempt += 1
            continue
        return broker


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (another process may take it later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
