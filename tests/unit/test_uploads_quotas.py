"""The upload server's count of stored bytes against its quotas: the ledger's arithmetic,
and the blob space keeping it as uploads start, end, are stored and deleted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fedward.errors import ConfigError, QuotaExceeded, StorageError
from fedward.uploads.blob_space import DiskBlobSpace
from fedward.uploads.quotas import Charge, QuotaLedger, StorageQuotas, default_total_bytes

PEERS = frozenset({"alice"})


def ledger(peer_limit: int = 100, total_limit: int = 250) -> QuotaLedger:
    return QuotaLedger(peer_limit, total_limit, [])


def test_a_reservation_past_the_peer_quota_is_refused_and_names_the_setting() -> None:
    quotas = ledger()
    quotas.charge("a" * 64, Charge(60, 60, PEERS))
    quotas.reserve("alice", peer_bytes=40, total_bytes=40)
    with pytest.raises(QuotaExceeded, match="--peer-quota-mb") as refused:
        quotas.reserve("alice", peer_bytes=1, total_bytes=1)
    assert isinstance(refused.value, StorageError)
    quotas.reserve("bob", peer_bytes=100, total_bytes=100)  # others are not held by alice


def test_the_total_quota_counts_every_peer_and_every_reservation() -> None:
    quotas = ledger()
    quotas.charge("a" * 64, Charge(100, 100, frozenset({"alice"})))
    quotas.reserve("bob", peer_bytes=100, total_bytes=100)
    with pytest.raises(QuotaExceeded, match="--total-quota-mb") as refused:
        quotas.reserve("carol", peer_bytes=51, total_bytes=51)
    assert "100" not in str(refused.value).split("quota of")[0]  # no usage told to a peer
    quotas.reserve("carol", peer_bytes=50, total_bytes=50)


def test_cancelled_reservations_and_released_blobs_free_their_bytes() -> None:
    quotas = ledger()
    held = quotas.reserve("alice", peer_bytes=100, total_bytes=100)
    quotas.cancel(held)
    quotas.charge("a" * 64, Charge(100, 100, PEERS))
    assert (quotas.stored_by("alice"), quotas.reserved_by("alice")) == (100, 0)
    quotas.release("a" * 64)
    quotas.release("a" * 64)  # twice: nothing more
    assert (quotas.stored_by("alice"), quotas.stored_bytes, quotas.reserved_bytes) == (0, 0, 0)
    quotas.reserve("alice", peer_bytes=100, total_bytes=100)


def test_a_blob_counts_against_each_uploader_and_once_in_all() -> None:
    quotas = ledger()
    quotas.charge("a" * 64, Charge(30, 30, frozenset({"alice"})))
    quotas.charge("a" * 64, Charge(30, 30, frozenset({"alice", "bob"})))  # bob sent it too
    assert (quotas.stored_by("alice"), quotas.stored_by("bob"), quotas.stored_bytes) == (30, 30, 30)
    assert quotas.charged_to("a" * 64, "bob") and not quotas.charged_to("a" * 64, "carol")


def test_an_upload_that_adds_nothing_passes_even_past_a_lowered_quota() -> None:
    quotas = QuotaLedger(10, 10, [("a" * 64, Charge(50, 50, PEERS))])
    quotas.reserve("alice", peer_bytes=0, total_bytes=0)


def test_quotas_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        StorageQuotas(peer_bytes=0)
    with pytest.raises(ConfigError):
        StorageQuotas(total_bytes=-1)


def test_the_default_total_leaves_a_tenth_of_the_free_space(tmp_path: Path) -> None:
    total = default_total_bytes(tmp_path, stored_bytes=1000)
    import shutil

    free = shutil.disk_usage(tmp_path).free
    assert 1000 + 0.89 * free <= total <= 1000 + 0.91 * free


def space_with(tmp_path: Path, peer_bytes: int = 100, total_bytes: int = 250) -> DiskBlobSpace:
    return DiskBlobSpace(tmp_path, quotas=StorageQuotas(peer_bytes, total_bytes))


def upload(space: DiskBlobSpace, data: bytes, uploader: str, readers: list[str]) -> str:
    blob_id = hashlib.sha256(data).hexdigest()
    incoming = space.begin_upload_of(blob_id, uploader, declared_bytes=len(data))
    try:
        incoming.write(data)
        space.commit(incoming, readers, uploader)
    finally:
        incoming.discard()
    return blob_id


def test_the_space_refuses_an_upload_before_writing_its_file(tmp_path: Path) -> None:
    space = space_with(tmp_path)
    upload(space, b"x" * 80, "alice", ["bob"])
    with pytest.raises(QuotaExceeded):
        space.begin_upload_of("b" * 64, "alice", declared_bytes=21)
    assert list((tmp_path / "incoming").iterdir()) == []
    assert space.quotas.reserved_by("alice") == 0


def test_a_dropped_upload_gives_back_its_reservation_once(tmp_path: Path) -> None:
    space = space_with(tmp_path)
    incoming = space.begin_upload_of("b" * 64, "alice", declared_bytes=100)
    assert space.quotas.reserved_by("alice") == 100
    incoming.write(b"partial")
    incoming.discard()
    incoming.discard()
    assert (space.quotas.reserved_by("alice"), space.quotas.reserved_bytes) == (0, 0)


def test_a_stored_upload_turns_its_reservation_into_its_charge(tmp_path: Path) -> None:
    space = space_with(tmp_path)
    blob_id = upload(space, b"y" * 70, "alice", ["bob"])
    assert (space.quotas.stored_by("alice"), space.quotas.reserved_by("alice")) == (70, 0)
    assert space.quotas.stored_bytes == 70
    # A reader that sends the same content again is charged too; nothing is written.
    upload(space, b"y" * 70, "bob", [])
    assert (space.quotas.stored_by("bob"), space.quotas.stored_bytes) == (70, 70)
    # The same peer sending it again adds nothing, even at its quota.
    upload(space, b"y" * 70, "alice", ["bob"])
    assert space.quotas.stored_by("alice") == 70
    assert space.delete_if(blob_id, lambda record: False) == 70
    assert (space.quotas.stored_by("alice"), space.quotas.stored_by("bob")) == (0, 0)
    assert space.quotas.stored_bytes == 0


def test_a_new_space_counts_what_the_disk_holds(tmp_path: Path) -> None:
    space = space_with(tmp_path)
    upload(space, b"z" * 60, "alice", ["bob"])
    shared = upload(space, b"w" * 30, "alice", ["bob"])
    upload(space, b"w" * 30, "bob", [])
    again = space_with(tmp_path)
    assert (again.quotas.stored_by("alice"), again.quotas.stored_by("bob")) == (90, 30)
    assert again.quotas.stored_bytes == 90
    # A blob whose sidecar is unreadable still holds its bytes on the disk.
    (tmp_path / "readers" / shared[:2] / f"{shared}.json").write_text("{broken")
    damaged = space_with(tmp_path)
    assert (damaged.quotas.stored_by("alice"), damaged.quotas.stored_bytes) == (60, 90)


def test_the_collector_releases_blobs_another_process_deleted(tmp_path: Path) -> None:
    from fedward.uploads.retention import RetentionPolicy, collect

    space = space_with(tmp_path)
    blob_id = upload(space, b"v" * 50, "alice", ["bob"])
    DiskBlobSpace(tmp_path, server=False).delete_if(blob_id, lambda record: False)
    assert space.quotas.stored_by("alice") == 50  # ``fedward uploads gc`` beside it
    collect(space, RetentionPolicy())
    assert (space.quotas.stored_by("alice"), space.quotas.stored_bytes) == (0, 0)


def test_the_default_total_is_worked_out_from_the_disk_at_start(tmp_path: Path) -> None:
    space = DiskBlobSpace(tmp_path)
    assert space.quotas.total_limit == pytest.approx(default_total_bytes(tmp_path, 0), rel=0.01)
