"""A reader's fetch counts once it confirms it kept the file, not at the body's last byte.

Retention deletes a parameters blob soon after every reader fetched it. Were the last
byte the fetch, a reader killed between it and keeping the file (renaming it into place)
would find the blob gone when it comes back. Real server over loopback; the attacks
(someone else's confirmation, confirmations of unknown or malformed ids, confirming
before the upload ended) go through raw HTTP, as a hostile peer would send them.
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import ValidationError
from fedward.protocol.params_wire import params_to_bytes
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.blob_space import BlobRecord
from fedward.uploads.retention import RetentionPolicy, collect
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import set_token

TOKENS = {p: f"{p}-token-0123456789abcdef" for p in ("researcher", "node1", "node2")}
EAGER = RetentionPolicy(keep_fetched_s=0, keep_idle_s=3600)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UploadServer]:
    tokens = tmp_path / "tokens.json"
    for peer, token in TOKENS.items():
        set_token(tokens, peer, token)
    with UploadServer(tmp_path / "data", tokens) as running:  # no collector: tests collect
        yield running


def store(server: UploadServer, peer: str) -> HttpBlobStore:
    return HttpBlobStore(server.url, TOKENS[peer], retry_s=0)


def record(server: UploadServer, blob_id: str) -> BlobRecord:
    found = server._app.space.record_of(blob_id)
    assert found is not None
    return found


def wait_fetched_by(server: UploadServer, blob_id: str, readers: set[str]) -> None:
    """Confirmations go out on a thread of their own, after ``get_file`` returned."""
    deadline = time.monotonic() + 10
    while record(server, blob_id).fetched_by != readers:
        assert time.monotonic() < deadline, "the confirmation never arrived"
        time.sleep(0.01)


def parameters(seed: int) -> bytes:
    return params_to_bytes({"w": np.full(1000, seed, dtype=np.float32)})


def exchange(server: UploadServer, head: str, peer: str | None, body: bytes = b"") -> bytes:
    """One request exactly as written (``head`` without its blank line); the whole reply."""
    host, port = server.url.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {TOKENS[peer]}\r\n" if peer else ""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"{head}\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode() + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def confirm(server: UploadServer, blob_id: str, peer: str | None) -> int:
    head = f"POST /blobs/{blob_id}/kept HTTP/1.1\r\nContent-Length: 0"
    return status_of(exchange(server, head, peer))


def test_get_file_counts_once_the_file_is_kept(server: UploadServer, tmp_path: Path) -> None:
    with store(server, "researcher") as researcher, store(server, "node1") as node:
        blob = researcher.put_bytes(parameters(1), ["node1"])
        node.get_file(blob, tmp_path / "in.safetensors")
    # Closing the store waited for its confirmation.
    assert record(server, blob).fetched_by == {"node1"}
    assert collect(server._app.space, EAGER).blobs == 1


def test_a_reader_that_got_every_byte_but_kept_nothing_finds_the_blob_again(
    server: UploadServer, tmp_path: Path
) -> None:
    with store(server, "researcher") as researcher:
        blob = researcher.put_bytes(parameters(2), ["node1"])
    # The whole body, then the reader dies before its rename: no confirmation.
    reply = exchange(server, f"GET /blobs/{blob} HTTP/1.1\r\nX-Fedward-Confirms: kept", "node1")
    assert status_of(reply) == 200
    assert hashlib.sha256(reply.partition(b"\r\n\r\n")[2]).hexdigest() == blob
    assert collect(server._app.space, EAGER).blobs == 0
    with store(server, "node1") as node:  # restarted
        node.get_file(blob, tmp_path / "in.safetensors")
    assert collect(server._app.space, EAGER).blobs == 1


def test_a_download_that_cannot_be_kept_is_not_confirmed(
    server: UploadServer, tmp_path: Path
) -> None:
    with store(server, "researcher") as researcher, store(server, "node1") as node:
        blob = researcher.put_bytes(parameters(3), ["node1"])
        with pytest.raises(ValidationError):
            node.get_file(blob, tmp_path / "in.safetensors", max_bytes=100)
    assert record(server, blob).fetched_by == frozenset()
    assert not list(tmp_path.glob("in.safetensors*"))


def test_a_download_into_memory_counts_at_its_last_byte(server: UploadServer) -> None:
    with store(server, "researcher") as researcher, store(server, "node1") as node:
        blob = researcher.put_bytes(parameters(4), ["node1"])
        node.get_bytes(blob)
    wait_fetched_by(server, blob, {"node1"})  # recorded after the last byte went out


def test_only_a_reader_can_confirm_and_only_for_itself(server: UploadServer) -> None:
    with store(server, "researcher") as researcher:
        blob = researcher.put_bytes(parameters(5), ["node1", "node2"])
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    assert confirm(server, blob, None) == 401
    assert confirm(server, blob, "node2") == 200  # its own fetch only: node1 still waits
    assert confirm(server, unknown, "node1") == 404
    assert record(server, blob).fetched_by == {"node2"}
    assert collect(server._app.space, EAGER).blobs == 0

    # A peer that may not read it hears what it hears for a blob that does not exist.
    with store(server, "node1") as node:
        private = node.put_bytes(parameters(6), ["researcher"])
    reply = exchange(server, f"POST /blobs/{private}/kept HTTP/1.1\r\nContent-Length: 0", "node2")
    unknown_reply = exchange(
        server, f"POST /blobs/{unknown}/kept HTTP/1.1\r\nContent-Length: 0", "node2"
    )
    assert status_of(reply) == status_of(unknown_reply) == 404
    body = reply.partition(b"\r\n\r\n")[2].replace(private.encode(), b"<id>")
    assert body == unknown_reply.partition(b"\r\n\r\n")[2].replace(unknown.encode(), b"<id>")
    assert record(server, private).fetched_by == frozenset()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        ("POST /blobs/kept HTTP/1.1", 400),
        ("POST /blobs//kept HTTP/1.1", 400),
        ("POST /blobs/../../etc/passwd/kept HTTP/1.1", 400),
        ("POST /blobs/" + "A" * 64 + "/kept HTTP/1.1", 400),
        ("GET /blobs/" + "0" * 64 + "/kept HTTP/1.1", 405),
        ("PUT /blobs/" + "0" * 64 + "/kept HTTP/1.1\r\nContent-Length: 0", 405),
        ("POST /blobs/" + "0" * 64 + " HTTP/1.1\r\nContent-Length: 0", 405),
    ],
)
def test_malformed_confirmations_are_refused(server: UploadServer, head: str, status: int) -> None:
    assert status_of(exchange(server, head, "node1")) == status
    assert server._app.space.has(hashlib.sha256(b"").hexdigest()) is False


def test_a_confirmation_with_a_body_is_answered_and_the_server_goes_on(
    server: UploadServer, tmp_path: Path
) -> None:
    with store(server, "researcher") as researcher:
        blob = researcher.put_bytes(parameters(7), ["node1"])
    junk = b"x" * 200_000
    head = f"POST /blobs/{blob}/kept HTTP/1.1\r\nContent-Length: {len(junk)}"
    assert status_of(exchange(server, head, "node1", junk)) == 200
    with store(server, "node1") as node:
        assert node.get_file(blob, tmp_path / "again.safetensors").read_bytes()


def test_a_confirmation_during_the_upload_counts_once_it_is_stored(
    server: UploadServer,
) -> None:
    data = parameters(8)
    blob = hashlib.sha256(data).hexdigest()
    host, port = server.url.removeprefix("http://").split(":")
    uploading = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"PUT /blobs/{blob} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        f"{TOKENS['researcher']}\r\nX-Fedward-Readers: node1\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    with uploading:
        uploading.sendall(head.encode() + data[:-10])
        deadline = time.monotonic() + 10
        while server._app._streams.read_by(blob, "node1") is None:  # registered
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # A reader of the upload in progress confirms: nothing is recorded yet ...
        assert confirm(server, blob, "node1") == 200
        # ... and someone the upload does not name cannot confirm it.
        assert confirm(server, blob, "node2") == 404
        # Only its uploader may offer it again while it arrives (a no-op until stored).
        assert offer(server, blob, "researcher") == 200
        assert offer(server, blob, "node1") == offer(server, blob, "node2") == 404
        assert server._app.space.record_of(blob) is None
        uploading.sendall(data[-10:])
        assert status_of(uploading.recv(65536)) == 201
    wait_fetched_by(server, blob, {"node1"})


def test_a_bogus_upload_in_progress_cannot_swallow_a_readers_confirmation(
    server: UploadServer, tmp_path: Path
) -> None:
    with store(server, "researcher") as researcher:
        blob = researcher.put_bytes(parameters(9), ["node1"])
    # node2 knows only the id: it starts an upload of it naming node1, and holds it open.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as bogus:
        bogus.sendall(
            f"PUT /blobs/{blob} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            f"{TOKENS['node2']}\r\nX-Fedward-Readers: node1\r\nContent-Length: 100000\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert bogus.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # registered
        with store(server, "node1") as node:
            node.get_file(blob, tmp_path / "in.safetensors")
        # Closing the store waited for its confirmation: it counts on the stored blob.
        assert record(server, blob).fetched_by == {"node1"}
    assert collect(server._app.space, EAGER).blobs == 1


def test_a_confirmation_lost_with_the_server_fails_nothing(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    for peer, token in TOKENS.items():
        set_token(tokens, peer, token)
    with UploadServer(tmp_path / "data", tokens) as running, store(running, "node1") as node:
        researcher = store(running, "researcher")
        blob = researcher.put_bytes(parameters(9), ["node1"])
        researcher.close()
        node.get_file(blob, tmp_path / "in.safetensors")
    # The server is gone: confirming again is logged, not raised.
    node.confirm_kept(blob)
    assert (tmp_path / "in.safetensors").is_file()


def offer(server: UploadServer, blob_id: str, peer: str) -> int:
    return status_of(exchange(server, f"POST /blobs/{blob_id}/offer HTTP/1.1", peer))


def test_its_uploader_offers_a_blob_again_and_its_readers_must_fetch_it_anew(
    server: UploadServer, tmp_path: Path
) -> None:
    with store(server, "node1") as node, store(server, "researcher") as researcher:
        blob = node.put_bytes(parameters(10), ["researcher"])
        researcher.get_file(blob, tmp_path / "update.safetensors")
        wait_fetched_by(server, blob, {"researcher"})
        assert record(server, blob).spent_at is not None
        assert node.offer_again(blob) is True
        assert record(server, blob).fetched_by == frozenset()
        assert record(server, blob).spent_at is None
        assert collect(server._app.space, EAGER).blobs == 0
        # Deleted once fetched again: offering it now says it is gone.
        researcher.get_file(blob, tmp_path / "update.safetensors")
        wait_fetched_by(server, blob, {"researcher"})
        assert collect(server._app.space, EAGER).blobs == 1
        assert node.offer_again(blob) is False


def test_only_the_uploader_may_offer_a_blob_again(server: UploadServer, tmp_path: Path) -> None:
    with store(server, "node1") as node, store(server, "researcher") as researcher:
        blob = node.put_bytes(parameters(11), ["researcher"])
        researcher.get_file(blob, tmp_path / "update.safetensors")
    # A reader cannot make a blob live on, nor can someone who may not read it.
    assert offer(server, blob, "researcher") == 404
    assert offer(server, blob, "node2") == 404
    assert offer(server, hashlib.sha256(b"nothing").hexdigest(), "node1") == 404
    assert status_of(exchange(server, f"GET /blobs/{blob}/offer HTTP/1.1", "node1")) == 405
    assert record(server, blob).spent_at is not None
