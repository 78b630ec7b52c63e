"""The background collector's memory of when each blob is due: it skips blobs whose
sidecar has not changed and that are not due, and deletes exactly what a collector
without memory deletes."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from fedward.uploads.blob_space import DiskBlobSpace
from fedward.uploads.retention import RetentionMemory, RetentionPolicy, collect

POLICY = RetentionPolicy(keep_fetched_s=10, keep_idle_s=3600)


def parameters(seed: int) -> bytes:
    return b"\x07" + b"\x00" * 7 + b'{"x":1}' + bytes([seed]) * 32  # laid out like safetensors


def upload(space: DiskBlobSpace, data: bytes, uploader: str, readers: list[str]) -> str:
    blob_id = hashlib.sha256(data).hexdigest()
    incoming = space.begin_upload_of(blob_id, uploader, declared_bytes=len(data))
    try:
        incoming.write(data)
        space.commit(incoming, readers, uploader)
    finally:
        incoming.discard()
    return blob_id


def settle(root: Path, age_s: float = 5.0) -> None:
    """Date every sidecar ``age_s`` back, as if written before the last sweep: sidecars
    written within the last second are read again anyway (the file system's clock)."""
    then = time.time() - age_s
    for sidecar in (root / "readers").glob("*/*.json"):
        os.utime(sidecar, (then, then))


def stored(root: Path) -> set[str]:
    return {path.name for path in (root / "objects").glob("*/*")}


def test_a_remembered_blob_not_due_is_skipped_until_its_sidecar_changes(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob = upload(space, parameters(1), "researcher", ["node1"])
    settle(tmp_path)
    memory = RetentionMemory(POLICY)
    now = time.time()
    assert collect(space, POLICY, now=now, memory=memory).kept == 1
    assert len(memory) == 1
    assert memory.not_due(space, blob, now + 60)  # waits for node1 until idle
    assert not memory.not_due(space, blob, now + 3600)

    space.record_fetch(blob, "node1")  # a new sidecar: read again, due 10 s from now
    assert not memory.not_due(space, blob, time.time() + 11)
    assert collect(space, POLICY, now=time.time() + 11, memory=memory).blobs == 1
    collect(space, POLICY, now=time.time(), memory=memory)
    assert len(memory) == 0  # nothing kept of a blob that is gone


def test_a_collector_with_memory_deletes_exactly_what_one_without_deletes(
    tmp_path: Path,
) -> None:
    plain_root, remembering_root = tmp_path / "plain", tmp_path / "remembering"
    space = DiskBlobSpace(plain_root)
    blobs = {
        "spent": upload(space, parameters(1), "researcher", ["node1"]),
        "waiting": upload(space, parameters(2), "researcher", ["node1", "node2"]),
        "plan": upload(space, b"class Plan: ...", "researcher", ["node1"]),
        "update": upload(space, parameters(3), "node1", ["researcher"]),
    }
    space.record_fetch(blobs["spent"], "node1")
    space.record_fetch(blobs["waiting"], "node1")
    space.record_fetch(blobs["plan"], "node1")
    settle(plain_root)
    shutil.copytree(plain_root, remembering_root)  # the same sidecars, times and all
    plain, remembering = space, DiskBlobSpace(remembering_root)
    memory = RetentionMemory(POLICY)

    start = time.time()
    for step, offset in enumerate([0, 5, 9.5, 10, 11, 600, 3599, 3600, 3601, 7300]):
        if step == 2:  # a fetch between sweeps, on both
            for each in (plain, remembering):
                each.record_fetch(blobs["update"], "researcher")
        if step == 6:  # the plan read again: a new use
            for each in (plain, remembering):
                each.record_fetch(blobs["plan"], "node2")
        now = start + offset
        expected = collect(plain, POLICY, now=now)
        assert collect(remembering, POLICY, now=now, memory=memory) == expected, offset
        assert stored(remembering_root) == stored(plain_root), offset
    assert stored(plain_root) == set()
