"""A real federation on loopback: broker, upload server and node processes, one researcher.

Used by ``fedward demo``, the notebooks, the end-to-end tests and the benchmarks. It is
the production code paths with loopback addresses: Mosquitto (or the embedded broker when
Mosquitto is not installed) with per-peer passwords and the ACL, the upload server with
per-peer tokens, each node a separate ``fedward node start`` process with its own state
directory and SQLite database.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedward.broker.peers import BrokerPeer
from fedward.broker.process import RunningBroker, start_broker
from fedward.config.model import (
    BrokerEndpoint,
    NodeConfig,
    ResearcherConfig,
    Secret,
    UploadsEndpoint,
)
from fedward.errors import TransportError
from fedward.node.services import open_node_services_for
from fedward.researcher.connect import connect
from fedward.researcher.federation import Federation
from fedward.storage.atomic import atomic_write_text
from fedward.uploads.tokens import set_token

log = logging.getLogger("fedward.demo")

ClientRoute = Callable[[str, str, int], tuple[str, int]]
"""(service: "broker" or "uploads", host, port) -> the address clients should use."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeProcess:
    node_id: str
    config_file: Path
    config: NodeConfig
    process: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None


@dataclass
class LocalFederation:
    workdir: Path
    node_ids: Sequence[str] = ("node1", "node2", "node3")
    researcher_id: str = "researcher1"
    approval_required: bool = True
    embedded_broker: bool | None = None  # None: Mosquitto when installed, else embedded
    node_env: dict[str, str] = field(default_factory=dict)
    # Extra TOML appended to a node's config file, by node id (e.g. a [jobs] table).
    node_toml: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    max_blob_mb: int | None = None
    # Where clients (nodes, researcher) reach a service, given its real address: the
    # chaos tests put a fault-injecting proxy in between. None: straight to the service.
    client_route: ClientRoute | None = None
    # Extra options for 'fedward uploads serve' (e.g. its retention settings).
    uploads_options: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.secrets_dir = self.workdir / "secrets"
        self.broker: RunningBroker | None = None
        self.uploads_process: subprocess.Popen[bytes] | None = None
        self.uploads_url = ""
        self._client_addresses: dict[str, tuple[str, int]] = {}
        self.nodes: dict[str, NodeProcess] = {}
        self._federations: list[Federation] = []

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> LocalFederation:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        passwords = {
            peer: self._secret(f"{peer}.broker-password")
            for peer in [*self.node_ids, self.researcher_id]
        }
        peers = [BrokerPeer("node", n, Secret(passwords[n])) for n in self.node_ids]
        peers.append(
            BrokerPeer("researcher", self.researcher_id, Secret(passwords[self.researcher_id]))
        )
        # The broker's own limit sits above the nodes' (1 MiB) so that an oversized request
        # reaches the node and gets a clear error reply instead of vanishing in the broker.
        self.broker = start_broker(
            peers,
            self.workdir / "broker",
            host=self.host,
            port=0,
            embedded=self.embedded_broker,
            max_message_bytes=2 << 20,
        )
        self._start_uploads()
        for service, (host, port) in (
            ("broker", (self.broker.host, self.broker.port)),
            ("uploads", (self.host, int(self.uploads_url.rsplit(":", 1)[1]))),
        ):
            route = self.client_route or (lambda _service, h, p: (h, p))
            self._client_addresses[service] = route(service, host, port)
        for node_id in self.node_ids:
            self.nodes[node_id] = self._prepare_node(node_id)
        return self

    def _secret(self, name: str) -> str:
        path = self.secrets_dir / name
        if not path.exists():
            atomic_write_text(path, secrets.token_urlsafe(24), mode=0o600)
        return path.read_text().strip()

    def _start_uploads(self, port: int | None = None) -> None:
        tokens = self.workdir / "uploads" / "tokens.json"
        for peer in [*self.node_ids, self.researcher_id]:
            set_token(tokens, peer, self._secret(f"{peer}.upload-token"))
        port = port or free_port(self.host)
        self.uploads_url = f"http://{self.host}:{port}"
        log_file = (self.workdir / "uploads.log").open("ab")
        self.uploads_process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fedward.cli",
                "uploads",
                "serve",
                "--host",
                self.host,
                "--port",
                str(port),
                "--data-dir",
                str(self.workdir / "uploads" / "data"),
                "--tokens",
                str(tokens),
                *(["--max-blob-mb", str(self.max_blob_mb)] if self.max_blob_mb else []),
                *self.uploads_options,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        _wait_http(f"{self.uploads_url}/health", self.uploads_process, timeout_s=60)

    def _stop_uploads(self, *, kill: bool = False) -> None:
        if self.uploads_process is not None and self.uploads_process.poll() is None:
            if kill:
                self.uploads_process.kill()
            else:
                self.uploads_process.terminate()
            _wait_or_kill(self.uploads_process, timeout_s=10)

    def restart_uploads(self, *, kill: bool = False) -> None:
        """Stop (``kill``: SIGKILL, as a crash) the upload server and start it again on
        the same port (fault tests)."""
        port = int(self.uploads_url.rsplit(":", 1)[1])
        self._stop_uploads(kill=kill)
        self._start_uploads(port)

    def _prepare_node(self, node_id: str) -> NodeProcess:
        state_dir = self.workdir / "nodes" / node_id
        state_dir.mkdir(parents=True, exist_ok=True)
        broker_host, broker_port = self.client_address("broker")
        config_file = state_dir / "node.toml"
        atomic_write_text(
            config_file,
            "\n".join(
                [
                    f'node_id = "{node_id}"',
                    f'state_dir = "{state_dir}"',
                    "[broker]",
                    f'host = "{broker_host}"',
                    f"port = {broker_port}",
                    f'username = "{node_id}"',
                    f'password_file = "{self.secrets_dir / (node_id + ".broker-password")}"',
                    "[uploads]",
                    f'url = "{self.client_uploads_url}"',
                    f'token_file = "{self.secrets_dir / (node_id + ".upload-token")}"',
                    "[training]",
                    f"approval_required = {'true' if self.approval_required else 'false'}",
                    self.node_toml.get(node_id, ""),
                    "",
                ]
            ),
        )
        config = NodeConfig(
            node_id=node_id, state_dir=state_dir, approval_required=self.approval_required
        )
        return NodeProcess(node_id, config_file, config)

    def add_dataset(
        self,
        node_id: str,
        *,
        data_type: str,
        path: Path,
        name: str,
        tags: Sequence[str],
        description: str = "",
    ) -> str:
        services = open_node_services_for(self.nodes[node_id].config)
        record = services.datasets.add(data_type, Path(path), name, list(tags), description)
        return record.dataset_id

    def start_node(self, node_id: str, env: Mapping[str, str] | None = None) -> NodeProcess:
        """Start one node process; ``env`` adds variables for this node only."""
        node = self.nodes[node_id]
        node.log_file = node.config.state_dir / "node.log"
        out = node.log_file.open("ab")
        process_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("MQTT_", "UPLOADS_", "NODE_ID", "FEDWARD_", "ENABLE_TRAINING", "ALLOW_DEFAULT")
            )
        }
        process_env.update(self.node_env)
        process_env.update(env or {})
        node.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fedward.cli",
                "-v",  # the node's log says what each job did
                "node",
                "start",
                "--config",
                str(node.config_file),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=process_env,
        )
        out.close()
        return node

    def start_nodes(self, timeout_s: float = 60.0) -> None:
        for node_id in self.node_ids:
            self.start_node(node_id)
        self.wait_online(list(self.node_ids), timeout_s)

    def wait_online(self, node_ids: list[str], timeout_s: float = 60.0) -> None:
        federation = self.researcher()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if set(node_ids) <= set(federation.online_nodes()):
                return
            for node_id in node_ids:
                process = self.nodes[node_id].process
                if process is not None and process.poll() is not None:
                    raise TransportError(
                        f"node {node_id} exited with status {process.returncode}; "
                        f"see {self.nodes[node_id].log_file}"
                    )
            time.sleep(0.05)
        raise TransportError(f"nodes {node_ids} did not come online within {timeout_s:.0f} s")

    def stop_node(self, node_id: str, *, kill: bool = False) -> None:
        process = self.nodes[node_id].process
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        _wait_or_kill(process, timeout_s=10)

    def client_address(self, service: str) -> tuple[str, int]:
        """Where nodes and the researcher reach ``service`` ("broker" or "uploads")."""
        return self._client_addresses[service]

    @property
    def client_uploads_url(self) -> str:
        host, port = self.client_address("uploads")
        return f"http://{host}:{port}"

    def researcher_config(self) -> ResearcherConfig:
        broker_host, broker_port = self.client_address("broker")
        return ResearcherConfig(
            researcher_id=self.researcher_id,
            state_dir=self.workdir / "researcher",
            broker=BrokerEndpoint(
                host=broker_host,
                port=broker_port,
                username=self.researcher_id,
                password=Secret(self._secret(f"{self.researcher_id}.broker-password")),
            ),
            uploads=UploadsEndpoint(
                self.client_uploads_url,
                Secret(self._secret(f"{self.researcher_id}.upload-token")),
            ),
        )

    def researcher(self) -> Federation:
        """The researcher's connection (one, shared; closed by ``stop``)."""
        if not self._federations:
            self._federations.append(connect(self.researcher_config()))
        return self._federations[0]

    def stop(self) -> None:
        for federation in self._federations:
            federation.close()
        self._federations.clear()
        # Signal every node first, then wait: they shut down in parallel.
        running = [n.process for n in self.nodes.values() if n.process and n.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            _wait_or_kill(process, timeout_s=15)
        self._stop_uploads()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _wait_or_kill(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait for a process that was told to stop; SIGKILL it if it outlives ``timeout_s``."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TransportError(f"the upload server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback URL we built
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise TransportError(f"the upload server did not answer at {url} within {timeout_s:.0f} s")


@contextmanager
def local_federation(workdir: Path, **kwargs: Any) -> Iterator[LocalFederation]:
    federation = LocalFederation(workdir, **kwargs)
    try:
        yield federation.start()
    finally:
        federation.stop()
