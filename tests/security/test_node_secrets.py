"""Classes 2 and 3: what an approved plan can reach on the node itself — its secrets,
database, configuration, the daemon's memory and environment, files outside its work
folder — and the daemon process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.security.conftest import AttackedNode


def node_secret_paths(node: AttackedNode) -> dict[str, Path]:
    fed = node.federation
    config = fed.nodes["target"].config
    return {
        "broker_password": fed.secrets_dir / "target.broker-password",
        "upload_token": fed.secrets_dir / "target.upload-token",
        "node_database": config.database_path,
        "node_config": fed.nodes["target"].config_file,
        "daemon_environment": Path(f"/proc/{node.pid}/environ"),
        "daemon_memory": Path(f"/proc/{node.pid}/mem"),
        "shadow": Path("/etc/shadow"),
    }


@pytest.mark.parametrize(
    "secret",
    [
        "broker_password",
        "upload_token",
        "node_database",
        "node_config",
        "daemon_environment",
        "daemon_memory",
        "shadow",
    ],
)
def test_a_plan_cannot_read_the_nodes_secrets(node: AttackedNode, secret: str) -> None:
    path = node_secret_paths(node)[secret]
    assert path.exists() or secret == "daemon_memory"
    assert node.escaped("read", str(path)) == 0.0


def test_the_probe_is_not_blind_it_reads_its_dataset(node: AttackedNode) -> None:
    assert node.escaped("read", str(node.dataset_file)) == 1.0


def test_a_plan_cannot_change_the_dataset(node: AttackedNode) -> None:
    before = node.dataset_file.read_bytes()
    assert node.escaped("write", str(node.dataset_file)) == 0.0
    assert node.dataset_file.read_bytes() == before


def test_a_plan_cannot_write_into_the_nodes_state(node: AttackedNode) -> None:
    target = node.state_dir / "planted.py"
    assert node.escaped("write", str(target)) == 0.0
    assert not target.exists()


def test_a_plan_cannot_signal_the_daemon(node: AttackedNode) -> None:
    assert node.escaped("signal_daemon", node.pid) == 0.0
    assert node.researcher.node_answers_ping()
    assert os.path.exists(f"/proc/{node.pid}")
