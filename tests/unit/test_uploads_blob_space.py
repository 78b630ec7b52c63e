"""Blobs on disk: atomic commit, reader lists that only grow, clean-up of dead uploads."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from fedward.errors import NotFound, ValidationError
from fedward.uploads import blob_space
from fedward.uploads.blob_space import DiskBlobSpace


def store(space: DiskBlobSpace, data: bytes, readers: list[str]) -> str:
    incoming = space.begin_upload(keep_content=True)
    try:
        incoming.write(data)
        space.commit(incoming, readers, uploader=readers[0])
    finally:
        incoming.discard()
    return incoming.blob_id()


def test_committed_blob_is_readable_by_its_readers_only(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob_id = store(space, b"weights", ["alice", "bob"])
    assert blob_id == hashlib.sha256(b"weights").hexdigest()
    handle, size = space.open_for(blob_id, "bob")
    with handle:
        assert handle.read() == b"weights"
    assert size == len(b"weights")
    with pytest.raises(NotFound):
        space.open_for(blob_id, "carol")


def test_readers_accumulate_and_survive_a_new_instance(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob_id = store(space, b"weights", ["alice"])
    store(space, b"weights", ["bob"])  # uploading stored content again only adds readers
    assert DiskBlobSpace(tmp_path).readers_of(blob_id) == {"alice", "bob"}


def test_unknown_blob_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        DiskBlobSpace(tmp_path).open_for("0" * 64, "alice")


def test_discarded_upload_leaves_no_file(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    incoming = space.begin_upload(keep_content=True)
    incoming.write(b"half an upload")
    incoming.discard()
    incoming.discard()
    assert list((tmp_path / "incoming").iterdir()) == []
    assert not space.has(incoming.blob_id())


def test_hash_only_upload_writes_nothing(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    incoming = space.begin_upload(keep_content=False)
    incoming.write(b"abc")
    assert incoming.blob_id() == hashlib.sha256(b"abc").hexdigest()
    assert list((tmp_path / "incoming").iterdir()) == []


def test_uploads_abandoned_by_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    DiskBlobSpace(tmp_path)
    leftover = tmp_path / "incoming" / "dead.part"
    leftover.write_bytes(b"x")
    DiskBlobSpace(tmp_path)
    assert not leftover.exists()


def test_damaged_reader_list_fails_closed(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob_id = store(space, b"weights", ["alice"])
    sidecar = tmp_path / "readers" / blob_id[:2] / f"{blob_id}.json"
    sidecar.write_text("{broken")
    with pytest.raises(NotFound):
        space.open_for(blob_id, "alice")


def test_reader_list_is_small_json_with_the_size_and_the_use(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob_id = store(space, b"weights", ["bob", "alice"])
    sidecar = tmp_path / "readers" / blob_id[:2] / f"{blob_id}.json"
    record = json.loads(sidecar.read_text())
    assert record.pop("last_used") > 0
    assert record == {
        "size": 7,
        "readers": ["alice", "bob"],
        "uploaders": ["bob"],
        "kind": "other",
        "fetched_by": [],
        "spent_at": None,
    }


def test_a_sidecar_written_before_use_was_recorded_still_reads(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob_id = store(space, b"old weights", ["alice"])
    sidecar = tmp_path / "readers" / blob_id[:2] / f"{blob_id}.json"
    sidecar.write_text(json.dumps({"size": 11, "readers": ["alice", "bob"]}))
    record = space.record_of(blob_id)
    assert record is not None and record.readers == {"alice", "bob"}
    assert record.uploaders == frozenset() and record.spent_at is None


def test_ids_that_are_not_sha256_never_become_paths(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    with pytest.raises(ValidationError):
        space.has("../../etc/passwd")
    with pytest.raises(ValidationError):
        space.open_for("../" + "0" * 61, "alice")


def test_the_collector_cannot_delete_content_its_reader_is_uploading_again(
    tmp_path: Path,
) -> None:
    from fedward.uploads.retention import RetentionPolicy, collect

    space = DiskBlobSpace(tmp_path)
    data = b"\x07" + b"\x00" * 7 + b'{"x":1}'  # laid out like parameters: retention applies
    blob_id = store(space, data, ["researcher", "node1"])
    space.record_fetch(blob_id, "node1")  # spent: deletable once keep_fetched_s passes
    eager = RetentionPolicy(keep_fetched_s=0.0, keep_idle_s=3600.0)

    # The same round's mean, sent again:
    again = space.begin_upload_of(blob_id, "researcher", declared_bytes=len(data))
    assert not again.keeps_content
    assert collect(space, eager).blobs == 0  # pinned while its bytes arrive
    again.write(data)
    space.commit(again, ["node1"], uploader="researcher")
    assert space.has(blob_id)

    space.record_fetch(blob_id, "node1")
    assert collect(space, eager).blobs == 1  # spent again: the pin was for one upload


def test_a_peer_that_may_not_read_a_blob_cannot_pin_it(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    blob_id = store(space, b"weights", ["researcher"])
    before = space.record_of(blob_id)
    stranger = space.begin_upload_of(blob_id, "mallory", declared_bytes=len(b"weights"))
    try:
        assert stranger.keeps_content  # its bytes are kept and checked like new content
        assert space.record_of(blob_id) == before
    finally:
        stranger.discard()


def test_a_commit_waiting_for_the_disk_holds_up_no_other_upload_or_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = DiskBlobSpace(tmp_path)
    served = store(space, b"already stored", ["node1"])
    flushing, disk_done = threading.Event(), threading.Event()

    def slow_fsync(path: Path) -> None:  # a disk that takes its time
        flushing.set()
        disk_done.wait(10)

    monkeypatch.setattr(blob_space, "fsync_path", slow_fsync)
    monkeypatch.setattr(blob_space, "fsync_dir", slow_fsync)
    committing = threading.Thread(target=store, args=(space, b"new content", ["node2"]))
    committing.start()
    try:
        assert flushing.wait(10)
        # While that upload's files are flushed, the store answers everyone else.
        others = threading.Thread(
            target=lambda: (
                space.record_fetch(served, "node1"),
                space.begin_upload_of(served, "node1", declared_bytes=0),
            )
        )
        others.start()
        others.join(10)  # a guard only: they must end before the disk does
        assert not others.is_alive() and committing.is_alive()
    finally:
        disk_done.set()
        committing.join(10)
    assert space.record_of(served).fetched_by == {"node1"}
    assert space.readers_of(hashlib.sha256(b"new content").hexdigest()) == {"node2"}
