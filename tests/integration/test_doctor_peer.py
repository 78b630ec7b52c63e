"""``fedward doctor node|researcher`` against a real Mosquitto (fedward's ACL) and the real
upload server on loopback, healthy and with one fault at a time. (With the VPN, in
namespaces: tests/lab/test_lab_doctor.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fedward.broker.peers import BrokerPeer
from fedward.broker.process import RunningBroker, find_mosquitto, start_broker
from fedward.config.model import Secret
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import remove_token, set_token

NODE, RESEARCHER = "node1", "res1"
PASSWORDS = {NODE: "pw-node1-doctor", RESEARCHER: "pw-res1-doctor"}
TOKENS = {NODE: "token-node1-" + "n" * 32, RESEARCHER: "token-res1-" + "r" * 32}
DOCTOR_TIMEOUT_S = 120
# libfaketime preloaded by ``env``, which execs: the doctor keeps the pid a timeout kills
# (the faketime wrapper forks, and its child would outlive it). The wall clock only: a faked
# monotonic clock would stretch every timed wait by the offset.
LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
CLOCK_TEN_MINUTES_AHEAD = (
    "env",
    f"LD_PRELOAD={LIBFAKETIME}",
    "FAKETIME=+10m",
    "DONT_FAKE_MONOTONIC=1",
)


@dataclass
class Federation:
    workdir: Path
    broker: RunningBroker
    uploads_url: str
    tokens_file: Path
    dataset: Path

    def env(self, peer_id: str) -> dict[str, str]:
        secrets = self.workdir / "secrets" / peer_id
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.workdir),
            "MQTT_BROKER": self.broker.host,
            "MQTT_BROKER_PORT": str(self.broker.port),
            "UPLOADS_URL": self.uploads_url,
            "FEDWARD_BROKER_USERNAME": peer_id,
            "FEDWARD_BROKER_PASSWORD_FILE": str(secrets / "broker_password"),
            "FEDWARD_UPLOADS_TOKEN_FILE": str(secrets / "uploads_token"),
        }
        if peer_id == NODE:
            env |= {"NODE_ID": NODE, "FEDWARD_NODE_DIR": str(self.workdir / "node-state")}
        else:
            env |= {"RESEARCHER_ID": RESEARCHER, "FEDWARD_RESEARCHER_DIR": str(self.workdir)}
        return env

    def fedward(
        self, peer_id: str, *args: str, prefix: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "fedward.cli", *args],
            capture_output=True,
            text=True,
            env=self.env(peer_id),
            timeout=DOCTOR_TIMEOUT_S,
            check=False,
        )

    def doctor(
        self, peer_id: str, *, prefix: tuple[str, ...] = ()
    ) -> tuple[int, dict[str, dict[str, str]]]:
        role = "node" if peer_id == NODE else "researcher"
        done = self.fedward(peer_id, "doctor", role, "--json", prefix=prefix)
        assert done.stdout, done.stderr
        report = json.loads(done.stdout)
        assert report["ok"] == (done.returncode == 0)
        return done.returncode, {c["check"]: c for c in report["checks"]}


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    for peer_id in (NODE, RESEARCHER):
        folder = tmp_path / "secrets" / peer_id
        folder.mkdir(parents=True)
        (folder / "broker_password").write_text(PASSWORDS[peer_id] + "\n")
        (folder / "uploads_token").write_text(TOKENS[peer_id] + "\n")
    peers = [
        BrokerPeer("node", NODE, Secret(PASSWORDS[NODE])),
        BrokerPeer("researcher", RESEARCHER, Secret(PASSWORDS[RESEARCHER])),
    ]
    tokens_file = tmp_path / "uploads_tokens.json"
    for peer_id, token in TOKENS.items():
        set_token(tokens_file, peer_id, token)
    dataset = tmp_path / "data" / "table.csv"
    dataset.parent.mkdir()
    dataset.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    broker = start_broker(peers, tmp_path / "broker", embedded=find_mosquitto() is None)
    try:
        with UploadServer(tmp_path / "blobs", tokens_file) as uploads:
            fed = Federation(tmp_path, broker, uploads.url, tokens_file, dataset)
            added = fed.fedward(
                NODE, "node", "dataset", "add", "--type", "csv", "--path", str(dataset),
                "--name", "table", "--tags", "doctor",
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            yield fed
    finally:
        broker.stop()


def _failing(checks: dict[str, dict[str, str]]) -> list[str]:
    return [name for name, c in checks.items() if c["status"] == "fail"]


def test_a_healthy_node_passes_every_check(federation: Federation) -> None:
    code, checks = federation.doctor(NODE)
    assert code == 0, checks
    assert checks["vpn"]["status"] == "skip"  # no enrolment folder: no VPN here
    for name in ("broker login", "broker topics", "upload token", "clock", "datasets"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "a foreign topic is refused" in checks["broker topics"]["detail"]


def test_a_healthy_researcher_passes_every_check(federation: Federation) -> None:
    code, checks = federation.doctor(RESEARCHER)
    assert code == 0, checks
    assert checks["broker topics"]["status"] == "ok"


def test_a_revoked_token_fails_the_token_row_only(federation: Federation) -> None:
    remove_token(federation.tokens_file, NODE)
    code, checks = federation.doctor(NODE)
    assert code == 1
    assert _failing(checks) == ["upload token"]
    assert "refuses this token" in checks["upload token"]["detail"]
    assert "uploads_tokens.json" in checks["upload token"]["fix"]


def test_a_broker_that_is_down_fails_the_login_and_skips_the_topics(
    federation: Federation,
) -> None:
    federation.broker.stop()
    code, checks = federation.doctor(NODE)
    assert code == 1
    assert _failing(checks) == ["broker login"]
    assert checks["broker topics"]["status"] == "skip"
    assert "fedward doctor broker" in checks["broker login"]["fix"]


def test_a_wrong_broker_password_is_named(federation: Federation) -> None:
    (federation.workdir / "secrets" / NODE / "broker_password").write_text("not-the-password\n")
    code, checks = federation.doctor(NODE)
    assert code == 1 and _failing(checks) == ["broker login"]
    assert "refuses user 'node1'" in checks["broker login"]["detail"]


@pytest.mark.skipif(find_mosquitto() is None, reason="needs Mosquitto")
def test_a_broker_without_fedwards_acl_fails_the_topics_row(
    federation: Federation, tmp_path: Path
) -> None:
    """A broker someone configured by hand: passwords, but no ACL."""
    federation.broker.stop()
    conf = tmp_path / "open.conf"
    passwords = federation.broker.files.passwords
    open_passwords = tmp_path / "open-passwords"
    shutil.copyfile(passwords, open_passwords)
    conf.write_text(
        f"user root\nallow_anonymous false\npassword_file {open_passwords}\n"
        f"listener {federation.broker.port} 127.0.0.1\n"
    )
    mosquitto = subprocess.Popen(
        [str(find_mosquitto()), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not federation.fedward(NODE, "doctor", "node").stdout.count("logged in"):
            assert time.monotonic() < deadline, "the hand-made broker did not start in 30 s"
            time.sleep(0.2)
        code, checks = federation.doctor(NODE)
        assert code == 1 and _failing(checks) == ["broker topics"]
        assert "does not enforce fedward's ACL" in checks["broker topics"]["detail"]
    finally:
        mosquitto.terminate()
        mosquitto.wait(timeout=10)


@pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (package faketime)")
def test_a_clock_ten_minutes_ahead_fails_the_clock_row(federation: Federation) -> None:
    code, checks = federation.doctor(RESEARCHER, prefix=CLOCK_TEN_MINUTES_AHEAD)
    assert code == 1 and _failing(checks) == ["clock"]
    assert "ahead of the upload server" in checks["clock"]["detail"]
    assert "timedatectl" in checks["clock"]["fix"]


def test_a_dataset_that_moved_away_fails_the_datasets_row(federation: Federation) -> None:
    federation.dataset.rename(federation.dataset.with_suffix(".moved"))
    code, checks = federation.doctor(NODE)
    assert code == 1 and _failing(checks) == ["datasets"]
    assert "missing" in checks["datasets"]["detail"]
    assert "fedward node dataset delete" in checks["datasets"]["fix"]


def test_gpu_row_appears_with_gpu_and_says_whether_cuda_is_visible(
    federation: Federation,
) -> None:
    from fedward.node.gpu import cuda_device_count

    done = federation.fedward(NODE, "doctor", "node", "--gpu", "--json")
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    if cuda_device_count() > 0:
        assert checks["gpu"]["status"] == "ok" and done.returncode == 0
    else:
        assert checks["gpu"]["status"] == "fail" and done.returncode == 1
        assert "no CUDA device" in checks["gpu"]["detail"]
        assert "start the node without --gpu" in checks["gpu"]["fix"]
    _, without = federation.doctor(NODE)
    assert "gpu" not in without
