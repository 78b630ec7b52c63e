"""The ``BlobStore`` contract, run against the in-memory store and the real HTTP one.

Each test gets a factory ``peer(peer_id) -> BlobStore`` that gives that peer's view of
one shared blob space, so both implementations answer the same questions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fedward.errors import NotFound, ValidationError
from fedward.transport.blobs import BlobStore
from fedward.transport.http_blobs import HttpBlobStore
from fedward.transport.memory import MemoryBlobStore
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import add_token

PEERS = ("alice", "bob", "carol")
PeerFactory = Callable[[str], BlobStore]


@pytest.fixture(scope="module")
def http_space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("contract")
    tokens = {peer_id: add_token(root / "tokens.json", peer_id) for peer_id in PEERS}
    with UploadServer(
        root / "data", root / "tokens.json", max_blob_bytes=8 * 1024 * 1024
    ) as server:
        yield server.url, tokens


@pytest.fixture(params=["memory", "http"])
def peer(request: pytest.FixtureRequest) -> Iterator[PeerFactory]:
    if request.param == "memory":
        space = MemoryBlobStore()
        yield space.as_peer
        return
    url, tokens = request.getfixturevalue("http_space")
    opened: list[HttpBlobStore] = []

    def http_peer(peer_id: str) -> BlobStore:
        store = HttpBlobStore(url, tokens[peer_id], timeout_s=10)
        opened.append(store)
        return store

    yield http_peer
    for store in opened:
        store.close()


def unique(label: str, request: pytest.FixtureRequest) -> bytes:
    # Blobs outlive a test on the shared server; unique content keeps tests independent.
    return f"{label} for {request.node.nodeid}".encode()


def test_blob_id_is_the_sha256_of_the_content(
    peer: PeerFactory, request: pytest.FixtureRequest
) -> None:
    data = unique("params", request)
    assert peer("alice").put_bytes(data, []) == hashlib.sha256(data).hexdigest()


def test_uploader_can_always_read_its_blob(
    peer: PeerFactory, request: pytest.FixtureRequest
) -> None:
    data = unique("own", request)
    alice = peer("alice")
    assert alice.get_bytes(alice.put_bytes(data, ["bob"])) == data


def test_named_readers_can_read_and_others_cannot(
    peer: PeerFactory, request: pytest.FixtureRequest
) -> None:
    data = unique("shared", request)
    blob_id = peer("alice").put_bytes(data, ["bob"])
    assert peer("bob").get_bytes(blob_id) == data
    with pytest.raises(NotFound):
        peer("carol").get_bytes(blob_id)


def test_missing_blob_is_not_found(peer: PeerFactory) -> None:
    with pytest.raises(NotFound):
        peer("alice").get_bytes("f" * 64)


def test_uploading_again_adds_readers_and_keeps_the_old_ones(
    peer: PeerFactory, request: pytest.FixtureRequest
) -> None:
    data = unique("twice", request)
    blob_id = peer("alice").put_bytes(data, ["bob"])
    assert peer("bob").put_bytes(data, ["carol"]) == blob_id
    for peer_id in PEERS:
        assert peer(peer_id).get_bytes(blob_id) == data


def test_empty_blob_round_trips(peer: PeerFactory) -> None:
    alice = peer("alice")
    assert alice.get_bytes(alice.put_bytes(b"", [])) == b""


def test_files_round_trip(
    peer: PeerFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = tmp_path / "plan.py"
    source.write_bytes(unique("plan source", request) * 1000)
    blob_id = peer("alice").put_file(source, ["bob"])
    dest = tmp_path / "received" / "plan.py"
    assert peer("bob").get_file(blob_id, dest) == dest
    assert dest.read_bytes() == source.read_bytes()


def test_get_file_replaces_an_existing_destination(
    peer: PeerFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = unique("new", request)
    dest = tmp_path / "params.bin"
    dest.write_bytes(b"old")
    alice = peer("alice")
    alice.get_file(alice.put_bytes(data, []), dest)
    assert dest.read_bytes() == data


def test_failed_get_file_leaves_nothing_behind(peer: PeerFactory, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        peer("alice").get_file("e" * 64, tmp_path / "params.bin")
    assert list(tmp_path.iterdir()) == []


def test_blob_over_max_bytes_is_refused_and_nothing_is_kept(
    peer: PeerFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = unique("over the cap", request) * 100
    alice = peer("alice")
    blob_id = alice.put_bytes(data, [])
    with pytest.raises(ValidationError, match=rf"larger than the limit of {len(data) - 1} bytes"):
        alice.get_bytes(blob_id, max_bytes=len(data) - 1)
    with pytest.raises(ValidationError, match="larger than the limit"):
        alice.get_file(blob_id, tmp_path / "params.bin", max_bytes=len(data) - 1)
    assert list(tmp_path.iterdir()) == []


def test_blob_of_exactly_max_bytes_is_served(
    peer: PeerFactory, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    data = unique("at the cap", request)
    alice = peer("alice")
    blob_id = alice.put_bytes(data, [])
    assert alice.get_bytes(blob_id, max_bytes=len(data)) == data
    dest = alice.get_file(blob_id, tmp_path / "params.bin", max_bytes=len(data))
    assert dest.read_bytes() == data
