"""``fedward doctor`` in a lab: every role healthy, then one fault at a time, each named by
the row it should fail and fixed again before the next.

    wrong key        node1's tunnel reconnected with a key the server never registered
    broker down      Mosquitto stopped
    revoked token    node1's token gone from the upload server's tokens file
    clock off        the upload server's wall clock ten minutes behind (faketime)
    dataset moved    the dataset's file no longer where it was registered
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from lab_harness import Lab, leftovers

from fedward.lab.deploy import (
    BROKER,
    UPLOADS,
    lab_down,
    lab_up,
    peer_folder,
    pings_server,
    spawn_recorded,
    vpn_dir,
)
from fedward.lab.netns import fedward_command, stop_process, tcp_open_in, wait_until
from fedward.lab.run import site_env
from fedward.lab.state import LabState
from fedward.storage.atomic import atomic_write_text
from fedward.uploads.tokens import remove_token, set_token
from fedward.vpn.keys import generate_private_key

pytestmark = pytest.mark.root
SYSTEM_PATH = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# libfaketime preloaded (not the faketime wrapper, which forks: the lab would record and
# stop the wrapper, not the server). The wall clock only: a faked monotonic clock would
# stretch every timed wait by the offset.
LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
CLOCK_TEN_MINUTES_BEHIND = (
    *("env", f"LD_PRELOAD={LIBFAKETIME}", "FAKETIME=-10m", "DONT_FAKE_MONOTONIC=1"),
)
RECOVERY_S = 90.0  # a new handshake and a broker restart, on a loaded 2-core machine
Checks = dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab_dir = tmp_path_factory.mktemp("doctor") / "lab"
    try:
        lab = Lab(lab_up(lab_dir, 1))
        _add_dataset(lab)
        yield lab
    finally:
        state = LabState.load(lab_dir)
        assert lab_down(lab_dir) == []
        assert leftovers(state.topology.prefix, lab_dir) == []


def _add_dataset(lab: Lab) -> None:
    env = site_env(lab.state, "node1")
    table = Path(env["FEDWARD_DATA_ROOT"]) / "cohort.csv"
    table.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    table.write_text("age,marker,label\n61,0.4,0\n54,1.2,1\n47,0.9,0\n")
    add = ["node", "dataset", "add", "--type", "csv", "--path", str(table)]
    done = _run(lab, "node1", [*add, "--name", "cohort", "--tags", "doctor"], env)
    assert done.returncode == 0, done.stderr


def _run(
    lab: Lab, component: str, args: list[str], env: dict[str, str], prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    command = ["ip", "netns", "exec", lab.namespace(component), *prefix, *fedward_command(*args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)


def _doctor(lab: Lab, role: str, *, prefix: tuple[str, ...] = ()) -> tuple[int, Checks]:
    state = lab.state
    mqtt, restful = peer_folder(state, "mqtt"), peer_folder(state, "restful")
    arguments = {
        "node": ("node1", ["doctor", "node"], site_env(state, "node1")),
        "researcher": ("researcher", ["doctor", "researcher"], site_env(state, "researcher")),
        "server": (
            "vpnserver",
            ["doctor", "server", "--state-dir", str(vpn_dir(state))],
            SYSTEM_PATH,
        ),
        "broker": ("mqtt", ["doctor", "broker", "--config-dir", str(mqtt / "broker")], SYSTEM_PATH),
        "uploads": (
            "restful",
            [
                *["doctor", "uploads", "--host", UPLOADS[0], "--port", str(UPLOADS[1])],
                *["--data-dir", str(state.lab_dir / "uploads")],
                *["--tokens", str(restful / "uploads_tokens.json")],
            ],
            SYSTEM_PATH,
        ),
    }
    component, args, env = arguments[role]
    done = _run(lab, component, [*args, "--json"], env, prefix)
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0), done.stderr
    return done.returncode, {c["check"]: c for c in report["checks"]}


def _failing(checks: Checks) -> list[str]:
    return [name for name, check in checks.items() if check["status"] == "fail"]


@pytest.mark.parametrize("role", ["server", "broker", "uploads", "node", "researcher"])
def test_every_role_of_a_healthy_lab_passes(lab: Lab, role: str) -> None:
    code, checks = _doctor(lab, role)
    assert code == 0, checks
    assert all(c["status"] == "ok" for c in checks.values()), checks


def test_a_node_with_a_key_the_server_never_registered(lab: Lab) -> None:
    folder = peer_folder(lab.state, "node1")
    key = folder / "private.key"
    registered = key.read_text()
    interface = lab.state.topology.wg_interface("node1")

    def reconnect_with(private_key: str) -> None:
        lab.run("node1", *fedward_command("vpn", "down", str(folder)), check=True)
        atomic_write_text(key, private_key, mode=0o600)
        connect = fedward_command("vpn", "connect", str(folder), "--interface", interface)
        lab.run("node1", *connect, check=True)

    reconnect_with(generate_private_key() + "\n")
    try:
        code, checks = _doctor(lab, "node")
        assert code == 1
        assert _failing(checks) == ["latest handshake", "ping 10.220.0.1"]
        assert checks["latest handshake"]["detail"].startswith("never")
        assert "fedward vpn add node node1" in checks["latest handshake"]["fix"]
        assert checks["broker login"]["status"] == "skip"
        assert checks["upload token"]["status"] == "skip"
    finally:
        reconnect_with(registered)
        namespace = lab.namespace("node1")
        wait_until(partial(pings_server, namespace), "node1 pinging again", RECOVERY_S)


def test_a_broker_that_is_down(lab: Lab) -> None:
    state = lab.state
    stop_process(state.process("broker").pid, lab.namespace("mqtt"))
    try:
        code, checks = _doctor(lab, "node")
        assert code == 1 and _failing(checks) == ["broker login"], checks
        assert checks["broker topics"]["status"] == "skip"
        code, checks = _doctor(lab, "broker")
        assert code == 1 and _failing(checks) == ["broker listening"], checks
        assert "fedward broker run" in checks["broker listening"]["fix"]
    finally:
        broker_dir = peer_folder(state, "mqtt") / "broker"
        run = fedward_command("broker", "run", "--config-dir", str(broker_dir))
        spawn_recorded(state, f"broker-{len(state.processes)}", "mqtt", run)
        listening = partial(tcp_open_in, lab.namespace("mqtt"), *BROKER)
        wait_until(listening, "the broker listening again", RECOVERY_S)


def test_a_revoked_upload_token(lab: Lab) -> None:
    tokens_file = peer_folder(lab.state, "restful") / "uploads_tokens.json"
    remove_token(tokens_file, "node1")
    try:
        code, checks = _doctor(lab, "node")
        assert code == 1 and _failing(checks) == ["upload token"], checks
        assert "refuses this token" in checks["upload token"]["detail"]
    finally:
        token = (peer_folder(lab.state, "node1") / "uploads_token").read_text().strip()
        set_token(tokens_file, "node1", token)


def _restart_uploads(lab: Lab, *prefix: str) -> None:
    """Stop the lab's upload server and start it again, under ``prefix`` if given."""
    state = lab.state
    running = [p for p in state.processes if p.component == "restful"]
    for process in running:
        stop_process(process.pid, lab.namespace("restful"))
    tokens = peer_folder(state, "restful") / "uploads_tokens.json"
    serve = ["uploads", "serve", "--host", UPLOADS[0], "--port", str(UPLOADS[1])]
    serve += ["--data-dir", str(state.lab_dir / "uploads"), "--tokens", str(tokens)]
    name = f"uploads-{len(state.processes)}"
    spawn_recorded(state, name, "restful", [*prefix, *fedward_command(*serve)])
    listening = partial(tcp_open_in, lab.namespace("restful"), *UPLOADS)
    wait_until(listening, "the upload server listening again", RECOVERY_S)


@pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (package faketime)")
def test_a_clock_ten_minutes_off(lab: Lab) -> None:
    """The upload server's machine runs ten minutes behind (faketime moves the clock of
    that one process: the kernel's, and so WireGuard's, stay right)."""
    _restart_uploads(lab, *CLOCK_TEN_MINUTES_BEHIND)
    try:
        code, checks = _doctor(lab, "node")
        assert code == 1 and _failing(checks) == ["clock"], checks
        seconds, _ = checks["clock"]["detail"].removeprefix("this machine is ").split(" s ", 1)
        assert 590 <= int(seconds) <= 610  # the Date header counts whole seconds
        assert checks["clock"]["detail"].endswith("s ahead of the upload server")
        assert "timedatectl" in checks["clock"]["fix"]
    finally:
        _restart_uploads(lab)


def test_a_dataset_that_moved(lab: Lab) -> None:
    table = Path(site_env(lab.state, "node1")["FEDWARD_DATA_ROOT"]) / "cohort.csv"
    table.rename(table.with_suffix(".moved"))
    try:
        code, checks = _doctor(lab, "node")
        assert code == 1 and _failing(checks) == ["datasets"], checks
        assert f"{table}: missing" in checks["datasets"]["detail"]
    finally:
        table.with_suffix(".moved").rename(table)


def test_the_table_shows_a_fix_under_each_failure(lab: Lab) -> None:
    tokens_file = peer_folder(lab.state, "restful") / "uploads_tokens.json"
    remove_token(tokens_file, "node1")
    try:
        done = _run(lab, "node1", ["doctor", "node"], site_env(lab.state, "node1"))
    finally:
        token = (peer_folder(lab.state, "node1") / "uploads_token").read_text().strip()
        set_token(tokens_file, "node1", token)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    (failure,) = [i for i, line in enumerate(lines) if line.lstrip().startswith("✘")]
    assert "upload token" in lines[failure]
    assert lines[failure + 1].strip().startswith("fix: ")
    assert lines[-1].startswith("1 of ") and lines[-1].endswith(" checks failed")
