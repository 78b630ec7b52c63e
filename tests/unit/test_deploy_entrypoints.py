"""The container entrypoints (deploy/docker/entrypoint/), run for real outside a container.

Their functions are sourced from the scripts and run against real fedward files: strict
env-file reading, private copies of secrets, the broker mirror, enrolment with the real
``fedward vpn`` commands, the supervisor, the ``fedward`` wrapper that drops root. (What a
container adds — namespaces, capabilities, docker's mounts — is not here: CI has no Docker
engine; tests/unit/test_deploy_files.py checks the compose files statically.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.broker.peers import BrokerPeer
from fedward.broker.render import render_broker_config
from fedward.config.model import Secret

ENTRYPOINT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "entrypoint"
FEDWARD = Path(sys.executable).parent / "fedward"
# As root, the scripts hand files to another account (nobody); otherwise to ourselves.
ACCOUNT = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
ACCOUNT_ENV = {"CONTAINER_UID": str(ACCOUNT[0]), "CONTAINER_GID": str(ACCOUNT[1])}


def run_bash(script: str, source: str = "lib.sh", **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` after sourcing an entrypoint script (its main does not run)."""
    return subprocess.run(
        ["bash", "-c", f'. "{ENTRYPOINT / source}"\n{script}'],
        env={"PATH": os.environ["PATH"], "FEDWARD_SYNC_INTERVAL_S": "0.1", **ACCOUNT_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_files_are_read_strictly_and_never_evaluated(tmp_path: Path) -> None:
    env_file, canary = tmp_path / "fedward.env", tmp_path / "canary"
    env_file.write_text("# a comment\n\nexport NODE_ID=node1\nMQTT_BROKER=10.220.0.2\nOTHER=x\n")
    read = run_bash(f"read_env_file {env_file} NODE_ID MQTT_BROKER")
    assert read.stdout == "NODE_ID=node1\nMQTT_BROKER=10.220.0.2\n"
    env_file.write_text(f"NODE_ID=$(touch {canary})\n")
    refused = run_bash(f"read_env_file {env_file} NODE_ID")
    assert refused.returncode != 0 and "not allowed" in refused.stderr
    env_file.write_text("just words\n")
    assert "not KEY=value" in run_bash(f"read_env_file {env_file} NODE_ID").stderr
    assert not canary.exists()
    unsafe = run_bash(
        "write_app_env \"NODE_ID=$(printf 'a b')\"", FEDWARD_RUNTIME_DIR=str(tmp_path)
    )
    assert unsafe.returncode != 0 and not (tmp_path / "app.env").exists()


def test_secrets_are_copied_private_to_the_account_and_only_when_changed(tmp_path: Path) -> None:
    source, copy = tmp_path / "uploads_token", tmp_path / "copy"
    source.write_text("token-1\n")
    script = f"for i in 1 2; do install_private {source} {copy} && echo changed || echo same; done"
    assert run_bash(script).stdout.split() == ["changed", "same"]
    assert (copy.stat().st_uid, copy.stat().st_gid) == ACCOUNT
    assert copy.stat().st_mode & 0o777 == 0o600
    source.write_text("token-2\n")
    assert run_bash(script).stdout.split() == ["changed", "same"]
    assert copy.read_text() == "token-2\n"


def test_the_broker_mirror_points_mosquitto_at_private_copies(tmp_path: Path) -> None:
    enrolment, runtime = tmp_path / "mqtt", tmp_path / "run"
    (runtime / "broker").mkdir(parents=True)

    def render(*node_ids: str) -> None:
        peers = [BrokerPeer("node", node_id, Secret(f"password-{node_id}")) for node_id in node_ids]
        render_broker_config(peers, enrolment / "broker", "10.220.0.2", 1883)

    env = {"FEDWARD_ENROLMENT_DIR": str(enrolment), "FEDWARD_RUNTIME_DIR": str(runtime)}
    sync = "for i in 1 2; do if sync_broker_files; then echo changed; else echo same; fi; done"
    render("node1")
    assert run_bash(sync, "mqtt.sh", **env).stdout.split() == ["changed", "same"]
    conf = (runtime / "broker" / "mosquitto.conf").read_text()
    assert f"password_file {runtime}/broker/passwords\n" in conf
    assert f"acl_file {runtime}/broker/acl\n" in conf
    # Mosquitto saves its database where it can write, not in root's enrolment folder.
    assert f"persistence_location {runtime}/broker/\n" in conf and str(enrolment) not in conf
    assert "listener 1883 10.220.0.2\n" in conf and "\nuser " not in conf
    for name in ("passwords", "acl", "mosquitto.conf"):
        assert (runtime / "broker" / name).stat().st_mode & 0o777 == 0o600
    render("node1", "node2")  # the VPN server enrolled another node
    assert run_bash(sync, "mqtt.sh", **env).stdout.split() == ["changed", "same"]
    assert "node2" in (runtime / "broker" / "acl").read_text()


def test_the_vpn_server_enrols_the_default_peers_once(tmp_path: Path) -> None:
    vpn_dir = tmp_path / "vpn"
    (vpn_dir / "config_peers" / "node" / "node1").mkdir(parents=True)  # as docker creates it
    env = {
        "FEDWARD_BIN": str(FEDWARD),
        "FEDWARD_VPN_DIR": str(vpn_dir),
        "VPN_SERVER_PUBLIC_ADDR": "vpnserver",
        "VPN_IP": "",  # compose passes the unset seed variables as empty strings
        "USE_WG_KERNEL_MOD": "",
        "FEDWARD_ENROL_NODES": "node1 node2",
        "FEDWARD_ENROL_RESEARCHERS": "researcher1",
    }
    first = run_bash("enrol_default_peers", "vpnserver.sh", **env)
    assert first.returncode == 0, first.stderr
    peers = vpn_dir / "config_peers"
    for folder in ("node/node1", "node/node2", "researcher/researcher1"):
        for name in ("config.env", "private.key", "fedward.env", "broker_password"):
            assert (peers / folder / name).is_file(), (folder, name)
    assert (peers / "management/mqtt/broker/mosquitto.conf").is_file()
    assert (peers / "management/restful/uploads_tokens.json").is_file()
    registry = (vpn_dir / "registry.json").read_text()
    again = run_bash("enrol_default_peers", "vpnserver.sh", **env)
    assert again.returncode == 0, again.stderr
    assert (vpn_dir / "registry.json").read_text() == registry


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [("off", ""), ("allowed", "--gpu --gpu-num 1"), ("only", "--gpu-only --gpu-num 1")],
)
def test_node_gpu_settings_become_start_options(gpu: str, expected: str) -> None:
    done = run_bash("gpu_options", "node.sh", NODE_GPU=gpu, NODE_GPU_NUM="1")
    assert done.returncode == 0 and done.stdout.strip() == expected
    assert run_bash("gpu_options", "node.sh", NODE_GPU="always").returncode != 0


def test_the_supervisor_ends_with_its_child_and_on_docker_stop(tmp_path: Path) -> None:
    stopped, ready = tmp_path / "stopped", tmp_path / "ready"
    on_stop = f'on_stop() {{ echo done > "{stopped}"; }}\n'
    ended = run_bash(on_stop + "(sleep 0.2; exit 3) &\n_CHILDREN+=($!)\nsupervise")
    assert ended.returncode == 3 and stopped.exists()
    stopped.unlink()
    script = on_stop + f'tick() {{ touch "{ready}"; }}\nsleep 60 &\n_CHILDREN+=($!)\nsupervise tick'
    env = {"PATH": os.environ["PATH"], "FEDWARD_SYNC_INTERVAL_S": "0.1"}
    with subprocess.Popen(["bash", "-c", f'. "{ENTRYPOINT / "lib.sh"}"\n{script}'], env=env) as run:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0
    assert stopped.exists()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the account can enter (pytest's tmp_path is root-only when run as root)."""
    path = Path(tempfile.mkdtemp(prefix="fedward-deploy-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_fedward_in_a_container_loads_the_settings_and_drops_root(shared_dir: Path) -> None:
    fake = shared_dir / "fedward"
    fake.write_text('#!/bin/sh\necho "$(id -u) $NODE_ID $*"\n')
    fake.chmod(0o755)
    (shared_dir / "app.env").write_text("NODE_ID=node7\n")
    env = {
        "PATH": os.environ["PATH"],
        "FEDWARD_BIN": str(fake),
        "FEDWARD_RUNTIME_DIR": str(shared_dir),
        "FEDWARD_APP_USER": "1",
        **ACCOUNT_ENV,
    }
    command = [str(ENTRYPOINT / "fedward-command.sh")]
    node = subprocess.run([*command, "node", "dataset", "list"], env=env, capture_output=True)
    assert node.stdout.decode().split() == [str(ACCOUNT[0]), "node7", "node", "dataset", "list"]
    vpn = subprocess.run([*command, "vpn", "status"], env=env, capture_output=True)
    assert vpn.stdout.decode().split()[0] == str(os.getuid())  # VPN commands keep root


def test_python_in_a_container_loads_the_settings_and_drops_root(shared_dir: Path) -> None:
    """`docker compose exec researcher python ...`: the link named python in /opt/fedward/bin."""
    fake = shared_dir / "venv-python"
    fake.write_text('#!/bin/sh\necho "$(id -u) $RESEARCHER_ID $*"\n')
    fake.chmod(0o755)
    (shared_dir / "app.env").write_text("RESEARCHER_ID=researcher7\n")
    for name in ("python", "python3"):
        (shared_dir / name).symlink_to(ENTRYPOINT / "fedward-command.sh")
    env = {
        "PATH": os.environ["PATH"],
        "FEDWARD_PYTHON": str(fake),
        "FEDWARD_BIN": "/nonexistent/fedward",  # the name called picks the program
        "FEDWARD_RUNTIME_DIR": str(shared_dir),
        "FEDWARD_APP_USER": "1",
        **ACCOUNT_ENV,
    }
    for name in ("python", "python3"):
        # "vpn" as a script name keeps no root: only `fedward vpn` does.
        done = subprocess.run([str(shared_dir / name), "vpn", "-"], env=env, capture_output=True)
        assert done.stdout.decode().split() == [str(ACCOUNT[0]), "researcher7", "vpn", "-"], done
