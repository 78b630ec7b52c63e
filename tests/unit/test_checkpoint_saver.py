"""Checkpoints finished on a thread beside the next round (``checkpoint_saver``): what the
next round may use at once, what waits for the checkpoint, and what a failure leaves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import ValidationError
from fedward.researcher.checkpoint import read_checkpoint, round_dirs
from fedward.researcher.checkpoint_saver import CheckpointSaver
from fedward.researcher.round_journal import journal_path, remove_stale_journals

PARAMS = {"w": np.arange(12, dtype=np.float32).reshape(3, 4)}


def test_the_next_round_uploads_the_staged_file_and_the_checkpoint_completes(
    tmp_path: Path,
) -> None:
    saver, done = CheckpointSaver(), []
    saver.save(
        tmp_path, 3, PARAMS, {}, {"note": "x"}, None, lambda: done.append(True), background=True
    )
    staged = saver.global_file(3)
    assert staged is not None and saver.global_file(2) is None
    # The file the next round uploads is the checkpoint's own parameters, byte for byte.
    assert hashlib.sha256(staged.path.read_bytes()).hexdigest() == staged.sha256
    saver.wait()
    assert done == [True] and saver.last == tmp_path / "round-0003"
    state = json.loads((tmp_path / "round-0003" / "state.json").read_text())
    assert state["params_sha256"] == staged.sha256 and state["note"] == "x"
    np.testing.assert_array_equal(read_checkpoint(saver.last).params["w"], PARAMS["w"])
    # The link shares the checkpoint's file: it survives the rename into place.
    assert staged.path.samefile(tmp_path / "round-0003" / "params.safetensors")


def test_a_failed_save_is_raised_at_the_next_wait_and_leaves_no_checkpoint(
    tmp_path: Path,
) -> None:
    saver, done = CheckpointSaver(), []
    bad_group = {"../escape": {"t": np.zeros(2, np.float32)}}
    saver.save(tmp_path, 1, PARAMS, bad_group, {}, None, lambda: done.append(True), background=True)
    with pytest.raises(ValidationError):
        saver.wait()
    assert done == [] and saver.last is None and round_dirs(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial folder, no link
    saver.wait()  # raised once


def test_a_journal_stays_until_its_checkpoint_is_complete(tmp_path: Path) -> None:
    saver = CheckpointSaver()
    saver.save(tmp_path, 1, PARAMS, {}, {}, None, lambda: None, background=True)
    saver.wait()  # round 1 saved: its journal would be stale
    for round_index in (0, 1):  # journals of round 1 (saved) and round 2 (being saved)
        journal_path(tmp_path, round_index).write_text("{}\n")
    remove_stale_journals(tmp_path, round_index=2)
    assert not journal_path(tmp_path, 0).exists()
    assert journal_path(tmp_path, 1).exists()  # round-0002 is not complete yet


def test_after_a_synchronous_save_the_next_round_uploads_the_complete_checkpoints_file(
    tmp_path: Path,
) -> None:
    saver = CheckpointSaver()
    saver.save(tmp_path, 2, PARAMS, {}, {}, None, lambda: None, background=False)
    complete = saver.global_file(2)
    assert complete is not None and saver.global_file(1) is None
    assert complete.path == tmp_path / "round-0002" / "params.safetensors"
    assert hashlib.sha256(complete.path.read_bytes()).hexdigest() == complete.sha256
    complete.path.write_bytes(b"changed behind the saver's back")
    assert saver.global_file(2) is None
