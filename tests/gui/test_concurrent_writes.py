"""The GUI and daemon-like writers on one node database at once: no write is lost.

Three writer processes record training jobs and audit events through the node services,
as node daemons do, while a client drives a real ``fedward gui serve`` process over HTTP
from several threads: registering and approving plans, adding datasets. Afterwards every
write of every party is in the database.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from fedward.node.services import open_node_services

from .gui_process import PASSWORDS, GuiProcess, add_user, clean_env, write_node_config

WRITERS = 3
JOBS_PER_WRITER = 40
PLANS = 12
DATASETS = 6

WRITER = """
import sys, time
from pathlib import Path
from fedward.node.services import open_node_services

database, data_root, writer, count, start_file = sys.argv[1:6]
services = open_node_services(Path(database), Path(data_root))
while not Path(start_file).exists():
    time.sleep(0.005)
for index in range(int(count)):
    job_id = services.jobs.start(f"exp-{writer}", index, "researcher1", "dataset-x", "sha256:00")
    services.jobs.finish(job_id, "succeeded", metrics={"accuracy": index / 100})
    services.audit.record("writer_tick", f"writer-{writer}", str(index))
services.close()
"""


def signed_in_client(base_url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base_url, timeout=60)
    page = client.get("/login").text
    login_token = re.search(r'name="login_token" value="([^"]+)"', page)
    assert login_token
    reply = client.post(
        "/login",
        data={
            "username": "alice",
            "password": PASSWORDS["alice"],
            "next": "/",
            "login_token": login_token.group(1),
        },
    )
    assert reply.status_code == 303, reply.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert csrf
    return client, csrf.group(1)


def register_and_approve(client: httpx.Client, csrf: str, index: int) -> None:
    source = f"class Plan{index}:\n    def train(self):\n        return {index}\n"
    reply = client.post(
        "/plans",
        data={
            "csrf_token": csrf,
            "name": f"plan {index}",
            "class_name": f"Plan{index}",
            "description": "",
            "source": source,
        },
    )
    assert reply.status_code == 303, reply.text
    plan_url = reply.headers["location"]
    assert plan_url.startswith("/plans/plan-"), plan_url
    approved = client.post(f"{plan_url}/approve", data={"csrf_token": csrf, "notes": "ok"})
    assert approved.status_code == 303 and approved.headers["location"] == plan_url


def add_dataset(client: httpx.Client, csrf: str, index: int) -> None:
    reply = client.post(
        "/datasets",
        data={
            "csrf_token": csrf,
            "path": f"table{index}.csv",
            "data_type": "csv",
            "name": f"table {index}",
            "tags": f"site-{index}",
            "description": "",
        },
    )
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"].startswith("/datasets/dataset-"), reply.headers


def test_gui_and_daemon_writers_on_one_database_lose_nothing(tmp_path: Path) -> None:
    state_dir, data_root = tmp_path / "state", tmp_path / "data"
    config = write_node_config(state_dir, data_root)
    for index in range(DATASETS):
        (data_root / f"table{index}.csv").write_text("x,y\n1,0\n2,1\n3,0\n")
    add_user(config, "alice", "admin", PASSWORDS["alice"], tmp_path)
    database = state_dir / "node.sqlite3"
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    start_file = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(database),
                str(data_root),
                str(n),
                str(JOBS_PER_WRITER),
                str(start_file),
            ],
            env=clean_env(),
        )
        for n in range(WRITERS)
    ]
    try:
        client, csrf = signed_in_client(gui.url)
        start_file.touch()
        with ThreadPoolExecutor(max_workers=3) as pool:
            tasks = [pool.submit(register_and_approve, client, csrf, i) for i in range(PLANS)]
            tasks += [pool.submit(add_dataset, client, csrf, i) for i in range(DATASETS)]
            for task in tasks:
                task.result()
        deadline = time.monotonic() + 120
        for writer in writers:
            assert writer.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
        client.close()
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
        gui.stop()

    services = open_node_services(database, data_root)
    try:
        jobs = services.jobs.list(limit=10_000)
        assert len(jobs) == WRITERS * JOBS_PER_WRITER
        assert all(job.outcome == "succeeded" and "accuracy" in job.metrics for job in jobs)
        for n in range(WRITERS):
            rounds = sorted(j.round_index for j in jobs if j.experiment_id == f"exp-{n}")
            assert rounds == list(range(JOBS_PER_WRITER))
        plans = services.plans.list()
        assert len(plans) == PLANS
        assert {p.status for p in plans} == {"approved"}
        assert {p.decided_by for p in plans} == {"alice"}
        assert len(services.datasets.list()) == DATASETS
        ticks = services.audit.list_events(limit=10_000, kind="writer_tick")
        assert len(ticks) == WRITERS * JOBS_PER_WRITER
        decisions = services.audit.list_events(limit=10_000, kind="plan_decision")
        assert len(decisions) == 2 * PLANS  # registered + approved, for each plan
    finally:
        services.close()
