"""One machine, every service of docker-compose.yml, used as an operator would.

Build, `up --wait`, enrolment by the containers themselves, a dataset on the node, the GUI's
first admin signing in over HTTP, a 2-round experiment from the researcher container and one
from a notebook through Jupyter's API, both training on the node through WireGuard; the VPN
counters of every tunnel grew; the node revoked and locked out; then the cleaning levels.
The services run as a non-root uid (CONTAINER_UID=4321): every file they write is its.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from tests.compose.compose import (
    DOCKER,
    EXPERIMENT,
    RESEARCHER_PYTHON,
    Project,
    add_digits,
    peer_keys,
    run,
    wg_transfer,
    write_env,
)

UID = 4321
SERVICES = {"vpnserver", "mqtt", "restful", "node", "gui", "researcher"}
PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, stopwatch
) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("one-machine")
    mounts = root / "run_mounts"
    env = write_env(
        root / "env",
        BASE_IMAGE=base_image,
        RUN_MOUNTS=str(mounts),
        CONTAINER_UID=str(UID),
        CONTAINER_GID=str(UID),
        VPN_SERVER_PUBLIC_ADDR="vpnserver",
        GUI_ALLOWED_HOSTS="gui.hospital.test other.hospital.test",
    )
    project = Project("fedward-compose-test", env)
    with stopwatch("build (six services)"):
        project.compose("build", timeout=1800)
    with stopwatch("up --wait (six services healthy)"):
        done = project.compose(
            "up", "-d", "--wait", "--wait-timeout", "600", check=False, timeout=900
        )
    if done.returncode != 0:
        logs = project.logs()
        project.compose("down", "-v", "--remove-orphans", check=False)
        raise AssertionError(f"up --wait failed: {done.stderr[-3000:]}\n{logs}")
    project.mounts = mounts  # type: ignore[attr-defined]
    yield project
    project.compose("--profile", "gpu", "down", "-v", "--remove-orphans", check=False)
    run(["rm", "-rf", str(mounts)], check=False)


def test_six_services_become_healthy(deployment: Project) -> None:
    assert deployment.health() == {name: "healthy" for name in SERVICES}


def test_every_peer_enrolled_itself_and_reaches_the_hub(deployment: Project) -> None:
    keys = peer_keys(deployment)
    assert {"mqtt", "restful", "node1", "researcher1"} <= keys.keys()
    for service in ("mqtt", "restful", "node", "researcher"):
        deployment.exec(service, "ping", "-c", "1", "-W", "3", "10.220.0.1")
    # The node reaches the broker through the hub, never directly (their networks differ).
    deployment.exec("node", "ping", "-c", "1", "-W", "3", "10.220.0.2")


def test_services_run_as_the_configured_uid_and_own_what_they_write(deployment: Project) -> None:
    mounts: Path = deployment.mounts  # type: ignore[attr-defined]
    for service, process in (
        ("node", "fedward"),
        ("researcher", "jupyter"),
        ("restful", "fedward"),
    ):
        # No procps in the images: ask /proc for each process's owner and command line.
        out = deployment.exec(
            service,
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do echo $(stat -c %u $p) $(tr '\\0' ' ' < $p/cmdline); done",
        ).stdout
        owners = {
            line.split()[0]
            for line in out.splitlines()
            if f"bin/{process}" in line and "stat -c" not in line
        }
        assert owners == {str(UID)}, (service, out)
    for folder in ("node/state", "researcher", "restful/uploads"):
        for path in [mounts / folder, *(mounts / folder).rglob("*")]:
            assert path.stat().st_uid == UID, path


def test_a_dataset_is_added_on_the_node(deployment: Project) -> None:
    mounts: Path = deployment.mounts  # type: ignore[attr-defined]
    add_digits(deployment, mounts, seed=0)
    listing = deployment.exec("node", "fedward", "node", "dataset", "list").stdout
    assert "digits" in listing


def test_the_node_reports_its_sandbox_layers(deployment: Project) -> None:
    status = deployment.exec("node", "fedward", "node", "status").stdout
    # Under Docker's default seccomp profile: no namespaces (bubblewrap cannot create them),
    # but the node's own seccomp filter and Landlock hold the required guarantees.
    assert "REFUSING JOBS" not in status, status
    assert re.search(r"^\s*seccomp\s+on\b", status, re.M), status
    assert re.search(r"^\s*namespaces\s+(on|off)\b", status, re.M), status


def test_the_gui_first_admin_signs_in_over_http(deployment: Project) -> None:
    deployment.exec(
        "gui",
        "sh",
        "-c",
        f"printf '%s\\n' '{PASSWORD}' > /tmp/pw"
        " && fedward gui adduser --admin alice --password-file /tmp/pw; rm -f /tmp/pw",
    )
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open("http://127.0.0.1:8484/login", timeout=10).read().decode()
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert token, form[:2000]
    body = urllib.parse.urlencode(
        {"login_token": token[1], "username": "alice", "password": PASSWORD, "next": "/"}
    ).encode()
    page = opener.open("http://127.0.0.1:8484/login", data=body, timeout=10)
    assert page.status == 200 and page.url.rstrip("/") == "http://127.0.0.1:8484"
    assert "alice" in page.read().decode()
    assert any(cookie.name for cookie in jar if cookie.path == "/")


def test_the_gui_answers_its_allowed_host_names_only(deployment: Project) -> None:
    def status(host: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", 8484, timeout=10)
        try:
            connection.request("GET", "/login", headers={"Host": host})
            return connection.getresponse().status
        finally:
            connection.close()

    assert status("gui.hospital.test:8484") == 200  # GUI_ALLOWED_HOSTS reached the GUI
    assert status("other.hospital.test") == 200
    assert status("127.0.0.1:8484") == 200
    assert status("rebound.attacker.test") == 400  # DNS rebinding


def test_the_broker_saves_its_database_where_it_can_write(deployment: Project) -> None:
    """Mosquitto runs as the account; its enrolment folder is root's only (a fixed bug)."""
    database = "/run/fedward/broker/mosquitto.db"
    deployment.wait_for(
        "Mosquitto's database",
        lambda: deployment.exec("mqtt", "test", "-s", database, check=False).returncode == 0,
        timeout_s=30,
    )
    logs = deployment.compose("logs", "--no-color", "mqtt").stdout
    assert "Error saving" not in logs, logs[-3000:]


def test_plain_exec_in_the_researcher_has_the_containers_settings(deployment: Project) -> None:
    """`docker compose exec researcher python|fedward ...`, as root, with no shell: the
    settings of the enrolment folder are loaded and the command runs as the account."""
    probe = "import os; print(os.getuid(), os.environ['RESEARCHER_ID'], os.environ['HOME'])"
    uid, researcher_id, home = deployment.exec("researcher", "python", "-c", probe).stdout.split()
    assert (uid, researcher_id) == (str(UID), "researcher1") and home != "/root"
    connect = "from fedward.researcher.connect import connect; connect().close(); print('ok')"
    assert deployment.exec("researcher", "python3", "-c", connect).stdout.split() == ["ok"]
    listing = json.loads(
        deployment.exec(
            "researcher", "fedward", "researcher", "nodes", "--json", "--timeout", "10"
        ).stdout
    )
    assert listing["node1"]["state"] == "online", listing
    assert [d["name"] for d in listing["node1"]["datasets"]] == ["digits"], listing


@pytest.fixture(scope="module")
def counters_before(deployment: Project) -> dict[str, tuple[int, int]]:
    return wg_transfer(deployment)


def test_a_two_round_experiment_runs_from_the_researcher_container(
    deployment: Project, counters_before, stopwatch
) -> None:
    with stopwatch("2-round experiment from the researcher container"):
        out = deployment.exec(
            "researcher",
            *RESEARCHER_PYTHON,  # as root: the wrapper drops to the account
            input=EXPERIMENT.format(experiment_id="compose-script"),
            timeout=900,
        ).stdout
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    assert result == [[1, "node1"], [2, "node1"]] or result == [[0, "node1"], [1, "node1"]], out


def test_a_notebook_runs_an_experiment_through_the_jupyter_api(
    deployment: Project, counters_before, stopwatch
) -> None:
    import websocket  # websocket-client, a dependency of jupyter_server

    mounts: Path = deployment.mounts  # type: ignore[attr-defined]
    token = (mounts / "researcher" / "jupyter_token").read_text().strip()
    base = "http://127.0.0.1:8888"

    def api(method: str, path: str, payload: object = None) -> dict:
        request = urllib.request.Request(
            f"{base}{path}",
            method=method,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    code = EXPERIMENT.format(experiment_id="compose-notebook")
    notebook = {
        "type": "notebook",
        "format": "json",
        "content": {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {
                    "cell_type": "code",
                    "id": "run",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                    "source": code,
                }
            ],
        },
    }
    api("PUT", "/api/contents/compose-test.ipynb", notebook)
    session = api(
        "POST",
        "/api/sessions",
        {"path": "compose-test.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
    )
    kernel = session["kernel"]["id"]
    socket = websocket.create_connection(
        f"ws://127.0.0.1:8888/api/kernels/{kernel}/channels?token={token}", timeout=600
    )
    msg_id = uuid.uuid4().hex
    cell = api("GET", "/api/contents/compose-test.ipynb")["content"]["cells"][0]["source"]
    socket.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": cell,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    output, status = "", None
    with stopwatch("2-round experiment from a notebook (Jupyter API)"):
        while status is None:
            message = json.loads(socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                output += message["content"]["text"]
            elif kind == "error":
                output += "\n".join(message["content"]["traceback"])
            elif kind == "execute_reply":
                status = message["content"]["status"]
    socket.close()
    api("DELETE", f"/api/sessions/{session['id']}")
    assert status == "ok", output[-3000:]
    assert '"node1"' in output.split("RESULT ", 1)[1], output[-2000:]


def test_the_vpn_counters_grew_on_each_tunnel(deployment: Project, counters_before) -> None:
    after = wg_transfer(deployment)
    keys = peer_keys(deployment)
    for peer in ("mqtt", "restful", "node1", "researcher1"):
        key = keys[peer]
        assert (
            after[key][0] > counters_before[key][0] and after[key][1] > counters_before[key][1]
        ), peer


def test_a_revoked_node_is_locked_out(deployment: Project) -> None:
    deployment.exec("vpnserver", "fedward", "vpn", "revoke", "node", "node1", input="y\n")
    assert "node1" not in peer_keys(deployment)
    lost = deployment.exec("node", "ping", "-c", "2", "-W", "2", "10.220.0.1", check=False)
    assert lost.returncode != 0, lost.stdout
    # Its broker account is gone too: the broker's password file no longer names it.
    mounts: Path = deployment.mounts  # type: ignore[attr-defined]
    passwords = (
        mounts / "vpnserver" / "config_peers" / "management" / "mqtt" / "broker" / "passwords"
    ).read_text()
    assert not re.search(r"^node1:", passwords, re.M)


def clean(deployment: Project, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return run(
        [
            str(DOCKER / "clean.sh"),
            "--env-file",
            str(deployment.env_file),
            "-p",
            deployment.name,
            *args,
        ],
        input=answer,
    )


def test_cleaning_level_1_removes_the_containers_only(deployment: Project) -> None:
    mounts: Path = deployment.mounts  # type: ignore[attr-defined]
    clean(deployment, "containers")
    assert deployment.health() == {}
    assert (mounts / "node" / "state").is_dir() and (mounts / "vpnserver").is_dir()
    assert run(["docker", "image", "inspect", "fedward/node:local"]).returncode == 0


def test_cleaning_level_2_removes_configuration_and_asks_for_enrolment_folders(
    deployment: Project,
) -> None:
    mounts: Path = deployment.mounts  # type: ignore[attr-defined]
    out = clean(deployment, "configuration", answer="n\n")
    assert not (mounts / "node" / "state").exists() and not (mounts / "researcher").exists()
    assert not (mounts / "restful").exists()
    assert (mounts / "vpnserver").is_dir(), out.stdout  # "n": the enrolment folders stay
    assert (mounts / "node" / "data" / "digits.csv").is_file()  # the datasets are the user's
    clean(deployment, "configuration", "vpnserver", answer="yes\n")
    assert not (mounts / "vpnserver").exists()


def test_cleaning_level_3_removes_the_images(deployment: Project) -> None:
    clean(deployment, "images", "gui")
    assert run(["docker", "image", "inspect", "fedward/gui:local"], check=False).returncode != 0
    assert run(["docker", "image", "inspect", "fedward/node:local"]).returncode == 0
    shutil.which("docker")
