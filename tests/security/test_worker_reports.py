"""Class 2: the daemon trusts nothing a worker reports. Plan code runs inside the worker,
so it can speak the worker's protocol itself, pass any descriptor as its result's file,
and plant files where results once lay; the daemon must upload nothing but a checked
sealed result, read, keep or delete nothing else, and keep serving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedward.core.messages import ScalarEvent, TrainReply
from tests.security import attack_plans
from tests.security.conftest import AttackedNode
from tests.waiting import wait_for


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file only root may read, outside every job folder: nothing may read or delete it."""
    path = tmp_path / "canary-secret"
    path.write_text("a secret of the hospital\n")
    path.chmod(0o600)
    return path


def test_files_planted_where_results_once_lay_are_never_read(
    node: AttackedNode, canary: Path
) -> None:
    # A link to a secret and a FIFO under the old fixed result names in work/: the
    # result comes as a sealed file, and the daemon opens nothing in work/.
    reply = node.attack(attack_plans.ForgeryPlan, {"attack": "planted", "target": str(canary)})
    assert isinstance(reply, TrainReply), reply
    assert reply.sample_count == 1
    assert canary.read_text() == "a secret of the hospital\n"


@pytest.mark.parametrize(
    ("attack", "words"),
    [
        ("unsealed_then_rewritten", "not sealed against changes"),
        ("dataset_file", "not sealed against changes"),
        ("pipe", "are not a file"),
        ("sparse_sealed", "larger than"),
        ("no_file", "passed 0 files with a result of 1"),
        ("two_files", "passed 2 files with a result of 1"),
        ("files_with_a_scalar", "more files than a result holds"),
    ],
)
def test_forged_result_files_are_refused(node: AttackedNode, attack: str, words: str) -> None:
    # A sparse file past the result's cap (the model's size + 1 MiB), within the worker's
    # own file-size limit.
    target = str(node.dataset_file) if attack == "dataset_file" else str(64 << 20)
    reply = node.attack(attack_plans.ForgeryPlan, {"attack": attack, "target": target})
    error = node.refused(reply)
    assert words in error.message, error
    assert str(node.state_dir) not in error.message
    # Every descriptor the worker passed is closed, refused or not.
    held = str(node.dataset_file.resolve())
    wait_for(
        lambda: not [f for f in files_held_by(node.pid) if f.startswith("/memfd:") or f == held],
        f"the node to close what the worker passed (holds: {files_held_by(node.pid)})",
    )


def files_held_by(pid: int) -> list[str]:
    """What the process's descriptors point at (paths, ``/memfd:NAME (deleted)``, ...)."""
    held = []
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held.append(os.readlink(link))
        except OSError:  # closed meanwhile
            continue
    return held


@pytest.mark.parametrize(
    "attack",
    ["extras_path", "other_job", "huge_sample_count", "metric_name", "endless_line", "not_json"],
)
def test_forged_reports_are_refused(node: AttackedNode, attack: str, canary: Path) -> None:
    reply = node.attack(attack_plans.ForgeryPlan, {"attack": attack, "target": str(canary)})
    error = node.refused(reply)
    assert error.code in ("job_worker_died", "job_failed"), error
    assert str(node.state_dir) not in error.message
    assert canary.exists()


def test_a_forged_result_naming_a_file_to_upload_is_ignored(
    node: AttackedNode, canary: Path
) -> None:
    # The old protocol uploaded and deleted whatever path the worker named.
    reply = node.attack(
        attack_plans.ForgeryPlan, {"attack": "old_extras_out", "target": str(canary)}
    )
    node.refused(reply)
    assert canary.read_text() == "a secret of the hospital\n"


@pytest.mark.parametrize(
    ("attack", "words"),
    [
        ("extra_tensor", "tensors the model has not"),
        ("reshaped", "change tensor"),
        ("nan", "non-finite"),
        ("inf", "non-finite"),
        ("more_samples_than_rows", "training samples"),
        ("unknown_extra", "no aggregator uses"),
    ],
)
def test_results_that_are_not_a_model_update_are_refused(
    node: AttackedNode, attack: str, words: str
) -> None:
    reply = node.attack(attack_plans.ResultPlan, {"attack": attack})
    assert words in node.refused(reply).message


def test_a_flood_of_progress_scalars_is_rate_limited(node: AttackedNode) -> None:
    request, replies = node.send(attack_plans.ResultPlan, {"attack": "scalar_flood"})
    assert isinstance(replies.get(timeout=90), TrainReply)
    forwarded = 0
    while not node.researcher.events.empty():
        event = node.researcher.events.get_nowait()
        if isinstance(event, ScalarEvent) and event.request_id == request.request_id:
            forwarded += 1
    assert 0 < forwarded < 2_000  # of 20,000 sent
    assert node.researcher.node_answers_ping()


@pytest.mark.parametrize("attack", ["none", "nan"])
def test_a_job_leaves_no_result_behind(node: AttackedNode, attack: str) -> None:
    request, replies = node.send(attack_plans.ResultPlan, {"attack": attack})
    replies.get(timeout=90)
    folder = node.state_dir / "jobs" / request.experiment_id

    def leftovers() -> list[Path]:
        return [p for p in folder.glob("*/*.safetensors") if p.parent.name != "inputs"]

    # A reply may come while the update still uploads (``node.update_uploads``); the
    # node closes the sealed result once the upload ends.
    wait_for(lambda: not leftovers(), f"the job's results to go (left: {leftovers()})")
    wait_for(
        lambda: not [f for f in files_held_by(node.pid) if f.startswith("/memfd:")],
        f"the node to close the job's sealed result (holds: {files_held_by(node.pid)})",
    )
