"""``HttpBlobStore`` against the real upload server: every failure becomes a fedward error."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.errors import (
    AccessDenied,
    IntegrityError,
    NotFound,
    TransportError,
    ValidationError,
)
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import add_token

LIMIT = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[UploadServer, Path, dict[str, str]]]:
    root = tmp_path_factory.mktemp("uploads-client")
    tokens_file = root / "tokens.json"
    tokens = {peer_id: add_token(tokens_file, peer_id) for peer_id in ("alice", "bob")}
    with UploadServer(root / "data", tokens_file, max_blob_bytes=LIMIT) as server:
        yield server, root / "data", tokens


@pytest.fixture
def alice(setup: tuple[UploadServer, Path, dict[str, str]]) -> Iterator[HttpBlobStore]:
    server, _, tokens = setup
    with HttpBlobStore(server.url, tokens["alice"], timeout_s=10) as store:
        yield store


@pytest.fixture
def bob(setup: tuple[UploadServer, Path, dict[str, str]]) -> Iterator[HttpBlobStore]:
    server, _, tokens = setup
    with HttpBlobStore(server.url + "/", tokens["bob"], timeout_s=10) as store:
        yield store


def test_large_file_streams_up_and_down_intact(
    alice: HttpBlobStore, bob: HttpBlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "params.safetensors"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    blob_id = alice.put_file(source, ["bob"])
    assert blob_id == hashlib.sha256(source.read_bytes()).hexdigest()
    dest = bob.get_file(blob_id, tmp_path / "down" / "params.safetensors")
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["params.safetensors"]


def test_wrong_token_is_access_denied(setup: tuple[UploadServer, Path, dict[str, str]]) -> None:
    server, _, _ = setup
    with HttpBlobStore(server.url, "not-a-real-token-0123456789") as store:
        with pytest.raises(AccessDenied):
            store.put_bytes(b"x", [])
        with pytest.raises(AccessDenied):
            store.get_bytes("0" * 64)


def test_blob_of_someone_else_is_not_found(alice: HttpBlobStore, bob: HttpBlobStore) -> None:
    blob_id = alice.put_bytes(b"alice only", [])
    with pytest.raises(NotFound):
        bob.get_bytes(blob_id)


def test_missing_blob_leaves_no_file_behind(alice: HttpBlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        alice.get_file("1" * 64, tmp_path / "missing.bin")
    assert list(tmp_path.iterdir()) == []


def test_upload_over_the_limit_says_the_limit(alice: HttpBlobStore) -> None:
    with pytest.raises(ValidationError, match=str(LIMIT)):
        alice.put_bytes(os.urandom(LIMIT + 1), [])


def test_corrupted_stored_blob_raises_integrity_error_and_keeps_nothing(
    setup: tuple[UploadServer, Path, dict[str, str]], alice: HttpBlobStore, tmp_path: Path
) -> None:
    _, data_dir, _ = setup
    blob_id = alice.put_bytes(b"original parameters", [])
    (data_dir / "objects" / blob_id[:2] / blob_id).write_bytes(b"tampered parameters")
    with pytest.raises(IntegrityError):
        alice.get_bytes(blob_id)
    dest = tmp_path / "params.bin"
    with pytest.raises(IntegrityError):
        alice.get_file(blob_id, dest)
    assert list(tmp_path.iterdir()) == []


def test_malformed_ids_and_readers_are_refused_before_sending(alice: HttpBlobStore) -> None:
    with pytest.raises(ValidationError):
        alice.get_bytes("../x")
    with pytest.raises(ValidationError):
        alice.put_bytes(b"x", ["../etc"])


def test_unreachable_server_is_a_transport_error_that_names_uploads_url() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = HttpBlobStore(f"http://127.0.0.1:{port}", "token-0123456789abcdef", retry_s=1)
    started = time.monotonic()
    with store, pytest.raises(TransportError) as caught:
        store.get_bytes("0" * 64)
    assert "UPLOADS_URL" in str(caught.value)
    assert time.monotonic() - started >= 0.5  # it was tried again before giving up


def test_token_never_appears_in_repr(
    alice: HttpBlobStore, setup: tuple[UploadServer, Path, dict[str, str]]
) -> None:
    assert setup[2]["alice"] not in repr(alice)


def test_a_body_cut_short_is_a_lost_connection_tried_again_not_bad_content(
    tmp_path: Path,
) -> None:
    data = os.urandom(200_000)
    blob_id = hashlib.sha256(data).hexdigest()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data)
    served = []

    def serve(listener: socket.socket) -> None:
        for attempt in range(2):  # first the body cut in half, then whole
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                body = data[: len(data) // 2] if attempt == 0 else data
                conn.sendall(head + body)
                served.append(len(body))

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        thread = threading.Thread(target=serve, args=(listener,), daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        with HttpBlobStore(f"http://127.0.0.1:{port}", "token-0123456789abcdef") as store:
            path = store.get_file(blob_id, tmp_path / "blob")
        thread.join(5)
    assert path.read_bytes() == data
    assert served == [len(data) // 2, len(data)]
    assert [p.name for p in tmp_path.iterdir()] == ["blob"]  # the cut attempt left nothing
