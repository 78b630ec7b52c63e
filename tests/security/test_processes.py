"""Class 4: no job outlives its limits. Forks, sessions, pipes held open, memory spread
over children, disk; and stuck jobs do not stop a node from training others."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from fedward.core.messages import TrainReply
from tests.security import attack_plans
from tests.security.conftest import AttackedNode

PIDS_MAX = 128  # conftest's [jobs] pids_max


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def gone_soon(marker: str, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_with(marker)


def processes_of(node: AttackedNode, experiment_id: str) -> list[int]:
    """Processes of an experiment's job tree: their HOME is its work folder."""
    home = f"HOME={node.state_dir / 'jobs' / experiment_id / 'work'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if home in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def tree_gone_soon(node: AttackedNode, experiment_id: str, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while processes_of(node, experiment_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_of(node, experiment_id)


def test_a_fork_bomb_is_bounded(node: AttackedNode) -> None:
    assert node.escaped("forks", 2000) < PIDS_MAX
    assert node.researcher.node_answers_ping()


def test_a_child_in_its_own_session_dies_with_its_job(node: AttackedNode) -> None:
    marker = f"fedward-marker-{secrets.token_hex(6)}"
    reply = node.attack(
        attack_plans.ProcessPlan, {"attack": "setsid_child", "marker": marker}, deadline_s=6.0
    )
    assert node.refused(reply, "job_timeout")
    assert gone_soon(marker)


def test_a_job_killed_at_its_deadline_leaves_no_process(node: AttackedNode) -> None:
    request, replies = node.send(attack_plans.ProcessPlan, {"attack": "stuck"}, deadline_s=5.0)
    node.refused(replies.get(timeout=60), "job_timeout")
    assert tree_gone_soon(node, request.experiment_id)


def test_a_child_holding_the_report_pipe_does_not_hold_the_reply(node: AttackedNode) -> None:
    marker = f"fedward-marker-{secrets.token_hex(6)}"
    started = time.monotonic()
    reply = node.attack(
        attack_plans.ProcessPlan, {"attack": "child_holds_pipe", "marker": marker}, deadline_s=50
    )
    node.refused(reply, "job_worker_died")
    assert time.monotonic() - started < 40  # answered, not left waiting for the deadline
    assert gone_soon(marker)


def test_memory_spread_over_children_is_limited_for_the_whole_tree(node: AttackedNode) -> None:
    # Four children of 400 MiB each: every process is under the 1024 MiB limit, the tree not.
    request, replies = node.send(
        attack_plans.ProcessPlan, {"attack": "memory_in_children", "megabytes": 400}
    )
    node.refused(replies.get(timeout=90), "job_memory_limit")
    assert tree_gone_soon(node, request.experiment_id)  # no process outlives the kill


def test_cpu_spent_in_children_counts_against_the_job(node: AttackedNode) -> None:
    request, replies = node.send(
        attack_plans.ProcessPlan, {"attack": "cpu_in_children"}, deadline_s=120
    )
    node.refused(replies.get(timeout=150), "job_cpu_limit")
    assert tree_gone_soon(node, request.experiment_id)


def test_a_job_filling_the_disk_is_stopped_at_its_quota(node: AttackedNode) -> None:
    reply = node.attack(attack_plans.ProcessPlan, {"attack": "fill_disk"}, deadline_s=120)
    assert "MiB" in node.refused(reply).message
    work_folders = (node.state_dir / "jobs").glob("*/work")
    assert sum(p.stat().st_size for w in work_folders for p in w.rglob("*")) < 300 << 20


def test_three_stuck_jobs_do_not_delay_a_fourth_experiment(node: AttackedNode) -> None:
    stuck = [
        node.send(attack_plans.ProcessPlan, {"attack": "stuck"}, deadline_s=40.0) for _ in range(3)
    ]
    for request, _ in stuck:
        node.researcher.wait_started(request)
    _, replies = node.send(attack_plans.ResultPlan, {"attack": "none"})
    assert isinstance(replies.get(timeout=30), TrainReply)
    # The fourth round finished while the three stuck jobs still ran (they end at 40 s).
    assert all(queue.empty() for _, queue in stuck)
    for _, queue in stuck:
        node.refused(queue.get(timeout=90), "job_timeout")
