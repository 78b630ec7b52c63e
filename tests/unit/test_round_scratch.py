"""A journaled round keeps its downloads until its checkpoint is complete
(``researcher.round_scratch``): a resumed round folds them again instead of fetching
blobs the upload server may have deleted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fedward.errors import NotFound
from fedward.researcher.round_journal import (
    RoundJournal,
    RoundStart,
    journal_path,
    remove_stale_journals,
)
from fedward.researcher.round_scratch import fetch_once, round_scratch
from fedward.transport.memory import MemoryBlobStore

CONTENT = b"an update's bytes" * 100


@pytest.fixture
def stored() -> tuple[MemoryBlobStore, str]:
    blobs = MemoryBlobStore()
    blob_id = blobs.as_peer("node1").put_bytes(CONTENT, readers=["researcher"])
    return blobs, blob_id


def test_a_kept_download_is_used_again_without_the_server(
    tmp_path: Path, stored: tuple[MemoryBlobStore, str]
) -> None:
    blobs, blob_id = stored
    path = tmp_path / "node1.safetensors"
    fetch_once(blobs.as_peer("researcher"), blob_id, path, 1 << 20, reuse=True)
    assert path.read_bytes() == CONTENT
    empty = MemoryBlobStore().as_peer("researcher")  # the server deleted the blob
    fetch_once(empty, blob_id, path, 1 << 20, reuse=True)
    assert path.read_bytes() == CONTENT
    with pytest.raises(NotFound):  # without reuse, the server is asked
        fetch_once(empty, blob_id, path, 1 << 20, reuse=False)


@pytest.mark.parametrize("damage", ["truncated", "other bytes", "over the cap"])
def test_a_kept_file_that_does_not_hash_to_the_blob_is_downloaded_again(
    tmp_path: Path, stored: tuple[MemoryBlobStore, str], damage: str
) -> None:
    blobs, blob_id = stored
    path = tmp_path / "node1.safetensors"
    cap = 1 << 20
    if damage == "truncated":  # not fsynced: a power cut may leave less
        path.write_bytes(CONTENT[:10])
    elif damage == "other bytes":
        path.write_bytes(b"x" * len(CONTENT))
    else:
        cap = len(CONTENT)
        path.write_bytes(CONTENT + b"!")
    fetch_once(blobs.as_peer("researcher"), blob_id, path, cap, reuse=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blob_id


def test_the_downloads_live_beside_the_journal_and_go_with_it(tmp_path: Path) -> None:
    journal = RoundJournal.open(journal_path(tmp_path / "exp", 2))
    with round_scratch(journal) as scratch:
        (scratch / "node1.safetensors").write_bytes(CONTENT)
    journal.begin(RoundStart(2, ("node1",), (), "a" * 64))
    assert scratch == journal.updates_dir and (scratch / "node1.safetensors").is_file()
    journal.remove()
    assert not scratch.exists() and not journal.path.exists()


def test_stale_journals_take_their_downloads_along(tmp_path: Path) -> None:
    journal = RoundJournal.open(journal_path(tmp_path, 0))
    with round_scratch(journal) as scratch:
        (scratch / "node1.safetensors").write_bytes(CONTENT)
    (tmp_path / "round-0001").mkdir()  # the round's checkpoint is complete
    (tmp_path / "round-0001" / "state.json").write_text("{}")
    remove_stale_journals(tmp_path, 1)
    assert not scratch.exists()


def test_a_round_without_a_journal_scratches_in_a_temporary_folder() -> None:
    with round_scratch(None) as scratch:
        (scratch / "x").write_bytes(b"1")
    assert not scratch.exists()
