"""Streaming an upload in progress to its readers (``uploads.upload_streams``), attacked
through the real server on loopback, with raw sockets where the bytes matter and the real
client where its behaviour does.

What must hold: someone who is not a reader learns nothing of an upload in progress (the
answer for an unknown blob, byte for byte); a reader never receives a complete body that
is wrong (an upload that fails its hash, stalls or is cut ends the reader's connection
short of its Content-Length); readers never hold the upload back, and how many of them
one peer runs at once is bounded. A peer that knows an id and starts a bogus upload of it
naming a reader can delay that reader only until the real content is stored: not fail
its download for good (an oversized claim), nor hold it past that moment (a drip).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.errors import RequestTimeout, TransportError
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.http_connection import Timeouts
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import set_token
from fedward.uploads.upload_streams import StreamCut, UploadStreams
from tests.waiting import wait_for

TOKENS = {
    "alice": "alice-token-0123456789",
    "bob": "bob-token-0123456789ab",
    "eve": "eve-t0ken-0123456789ab",
}
SIZE = 4 * 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UploadServer]:
    for peer, token in TOKENS.items():
        set_token(tmp_path / "tokens.json", peer, token)
    timeouts = Timeouts(head_timeout_s=2.0, idle_timeout_s=4.0, io_timeout_s=2.0)
    with UploadServer(
        tmp_path / "data", tmp_path / "tokens.json", max_blob_bytes=64 << 20, timeouts=timeouts
    ) as running:
        yield running


def connect(server: UploadServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=20)


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, fields and whatever of the body came with the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    return int(status_line.split(" ")[1]), fields, rest


def read_to_end(sock: socket.socket, got: bytes = b"") -> bytes:
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


def begin_upload(
    server: UploadServer, blob_id: str, size: int, readers: str, uploader: str = "alice"
) -> socket.socket:
    """A PUT whose head the server accepted (100 Continue read); its body still to send."""
    sock = connect(server)
    sock.sendall(
        f"PUT /blobs/{blob_id} HTTP/1.1\r\nAuthorization: Bearer {TOKENS[uploader]}\r\n"
        f"Content-Length: {size}\r\nX-Fedward-Readers: {readers}\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    return sock


def begin_get(server: UploadServer, peer: str, blob_id: str) -> socket.socket:
    sock = connect(server)
    sock.sendall(
        f"GET /blobs/{blob_id} HTTP/1.1\r\nAuthorization: Bearer {TOKENS[peer]}\r\n\r\n".encode()
    )
    return sock


def content(seed: int = 1) -> bytes:
    return hashlib.sha256(bytes([seed])).digest() * (SIZE // 32)


def store(server: UploadServer, peer: str) -> HttpBlobStore:
    return HttpBlobStore(server.url, TOKENS[peer], retry_s=0)


def incoming(server: UploadServer) -> list[Path]:
    return list(server._app.space._incoming.iterdir())


def test_a_non_reader_hears_for_an_upload_in_progress_what_it_hears_for_no_blob(
    server: UploadServer,
) -> None:
    data = content()
    blob_id = hashlib.sha256(data).hexdigest()
    unknown = hashlib.sha256(b"nothing").hexdigest()
    upload = begin_upload(server, blob_id, len(data), "bob")
    upload.sendall(data[: SIZE // 2])
    answers = {}
    for asked in (blob_id, unknown):
        with begin_get(server, "eve", asked) as get:
            status, fields, body = read_head(get)
            fields.pop("date")
            answers[asked] = (status, fields, body.replace(asked.encode(), b"<id>"))
    assert answers[blob_id] == answers[unknown]
    assert answers[blob_id][0] == 404
    upload.sendall(data[SIZE // 2 :])
    assert read_head(upload)[0] == 201
    upload.close()


def test_a_reader_of_an_upload_that_fails_its_hash_is_cut_short_of_the_end(
    server: UploadServer,
) -> None:
    claimed = content(1)
    sent = content(2)  # same length, other bytes: the hash fails only at the end
    blob_id = hashlib.sha256(claimed).hexdigest()
    upload = begin_upload(server, blob_id, SIZE, "bob")
    upload.sendall(sent[:1000])
    with begin_get(server, "bob", blob_id) as get:
        status, fields, first = read_head(get)
        assert status == 200 and int(fields["content-length"]) == SIZE
        upload.sendall(sent[1000:])
        status, _, reply = read_head(upload)
        assert status == 400 and json.loads(reply)["error"] == "integrity"
        got = read_to_end(get, first)
    assert len(got) < SIZE, "a complete body for content that failed its hash"
    assert got == sent[: len(got)]
    assert incoming(server) == []
    with begin_upload(server, blob_id, SIZE, "bob") as again:  # the real client now
        again.sendall(sent[:1000])
        reader, result = reading(store(server, "bob"), blob_id)
        await_streaming(server, blob_id)
        again.sendall(sent[1000:])
        assert read_head(again)[0] == 400
        reader.join(30)
    assert len(result) == 1 and isinstance(result[0], TransportError)  # a cut, not content


def await_streaming(server: UploadServer, blob_id: str) -> None:
    """Until a reader streams the upload of ``blob_id``."""
    streams = server._app._streams
    while True:
        with streams._lock:
            if any(s._active for s in streams._streams.get(blob_id, [])):
                return
        threading.Event().wait(0.01)


def reading(
    blobs: HttpBlobStore, blob_id: str, max_bytes: int | None = None
) -> tuple[threading.Thread, list[object]]:
    """A started thread that GETs ``blob_id``; its list gets the bytes or the error."""
    result: list[object] = []

    def get() -> None:
        try:
            result.append(blobs.get_bytes(blob_id, max_bytes=max_bytes))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=get)
    thread.start()
    return thread, result


def test_an_uploader_that_stalls_cuts_its_waiting_reader_at_the_io_timeout(
    server: UploadServer,
) -> None:
    data = content()
    blob_id = hashlib.sha256(data).hexdigest()
    upload = begin_upload(server, blob_id, SIZE, "bob")
    upload.sendall(data[: SIZE // 2])
    with begin_get(server, "bob", blob_id) as get:
        status, _, first = read_head(get)
        got = read_to_end(get, first)  # ends when the stalled upload is given up
    assert status == 200 and len(got) < SIZE
    assert read_to_end(upload) == b""  # the uploader is owed no answer
    upload.close()
    assert incoming(server) == []
    assert not server._app.space.has(blob_id)


def test_one_reader_runs_a_bounded_number_of_streams_of_one_upload(
    server: UploadServer,
) -> None:
    data = content()
    blob_id = hashlib.sha256(data).hexdigest()
    upload = begin_upload(server, blob_id, SIZE, "bob")
    upload.sendall(data[:1000])
    streams = [begin_get(server, "bob", blob_id) for _ in range(2)]
    heads = [read_head(s) for s in streams]
    assert [h[0] for h in heads] == [200, 200]
    with begin_get(server, "bob", blob_id) as third:
        status, _, body = read_head(third)
    assert status == 503 and json.loads(body)["error"] == "storage"
    upload.sendall(data[1000:])
    assert read_head(upload)[0] == 201
    for sock, (_, _, first) in zip(streams, heads, strict=True):
        with sock:
            assert _body_of(sock, first) == data


def _body_of(sock: socket.socket, first: bytes) -> bytes:
    got = first
    while len(got) < SIZE:
        chunk = sock.recv(1 << 20)
        assert chunk, f"cut after {len(got)} bytes"
        got += chunk
    return got


def test_a_reader_that_never_reads_does_not_hold_the_upload(server: UploadServer) -> None:
    data = content() * 4  # 16 MiB: far more than the socket buffers hold
    blob_id = hashlib.sha256(data).hexdigest()
    upload = begin_upload(server, blob_id, len(data), "bob")
    idle = connect(server)
    idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    idle.sendall(
        f"GET /blobs/{blob_id} HTTP/1.1\r\nAuthorization: Bearer {TOKENS['bob']}\r\n\r\n".encode()
    )
    upload.sendall(data)
    assert read_head(upload)[0] == 201  # while the reader has read nothing
    upload.close()
    assert server._app.space.has(blob_id)
    idle.close()
    assert store(server, "bob").get_bytes(blob_id) == data


def test_the_uploader_streams_its_own_upload_in_progress(server: UploadServer) -> None:
    data = content()
    blob_id = hashlib.sha256(data).hexdigest()
    upload = begin_upload(server, blob_id, SIZE, "bob")
    upload.sendall(data[:12345])
    with begin_get(server, "alice", blob_id) as get:
        status, _, first = read_head(get)
        assert status == 200
        upload.sendall(data[12345:])
        assert read_head(upload)[0] == 201
        assert _body_of(get, first) == data
    upload.close()


def test_a_streamed_get_returns_the_bytes_and_counts_as_a_fetch(
    server: UploadServer, tmp_path: Path
) -> None:
    data = content()
    blob_id = hashlib.sha256(data).hexdigest()
    upload = begin_upload(server, blob_id, SIZE, "bob")
    upload.sendall(data[:5000])
    reader, result = reading(store(server, "bob"), blob_id)
    await_streaming(server, blob_id)  # the GET streams the upload, not the stored blob
    upload.sendall(data[5000:])
    assert read_head(upload)[0] == 201
    reader.join(30)
    assert result == [data]

    def fetched_by() -> frozenset[str]:
        record = server._app.space.record_of(blob_id)
        return record.fetched_by if record is not None else frozenset()

    # The server records the fetch once its last byte is sent, after the client has it.
    wait_for(lambda: fetched_by() == {"bob"}, "the server to record bob's fetch")


def test_put_file_tells_its_readers_to_start_before_the_body_is_sent(
    server: UploadServer, tmp_path: Path
) -> None:
    data = content() * 4
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    blob_id = hashlib.sha256(data).hexdigest()
    readers: list[tuple[threading.Thread, list[object]]] = []

    def start_reader() -> None:
        assert not server._app.space.has(blob_id)  # not stored yet: the reader streams
        readers.append(reading(store(server, "bob"), blob_id))

    with store(server, "alice") as alice:
        assert alice.put_file(path, ["bob"], blob_id=blob_id, on_accepted=start_reader) == blob_id
    reader, result = readers[0]
    reader.join(30)
    assert result == [data]


def test_a_download_cut_by_a_failed_upload_waits_for_it_to_be_sent_again(
    server: UploadServer, tmp_path: Path
) -> None:
    data = content()
    blob_id = hashlib.sha256(data).hexdigest()
    upload = begin_upload(server, blob_id, SIZE, "bob")
    upload.sendall(data[:5000])
    patient = HttpBlobStore(server.url, TOKENS["bob"], retry_s=30)
    reader, result = reading(patient, blob_id)
    await_streaming(server, blob_id)
    upload.shutdown(socket.SHUT_RDWR)  # the uploader dies mid-body: the reader is cut
    upload.close()
    threading.Event().wait(0.5)  # the reader meets a 404 meanwhile, and keeps trying
    path = tmp_path / "again.bin"
    path.write_bytes(data)
    with store(server, "alice") as alice:
        alice.put_file(path, ["bob"], blob_id=blob_id)
    reader.join(30)
    assert result == [data]


def test_the_last_byte_waits_for_the_verdict(tmp_path: Path) -> None:
    """The rule itself, without a race to win: every byte written, nothing verified yet."""
    path = tmp_path / "part"
    path.write_bytes(b"x" * 10)
    streams = UploadStreams()
    with open(path, "rb") as handle:
        stream = streams.register("a" * 64, 10, frozenset({"bob"}), handle)
    stream.wrote(10)
    assert stream.sendable(0, patience_s=0.0) == 9
    with pytest.raises(StreamCut):
        stream.sendable(9, patience_s=0.05)  # stalled: nothing more may go
    with streams.reading("a" * 64, "eve") as nothing:
        assert nothing is None
    streams.finish(stream, stored=False)
    with pytest.raises(StreamCut):
        stream.sendable(9, patience_s=10.0)  # failed: cut at once
    with open(path, "rb") as handle:
        verified = streams.register("b" * 64, 10, frozenset({"bob"}), handle)
    verified.wrote(10)
    verified.verified()  # hashed to its id, not stored yet: the last byte may go
    assert verified.sendable(9, patience_s=0.0) == 10
    served: list[str] = []
    verified.after_stored(lambda: served.append("bob"))
    assert served == []  # a fetch counts only once the content is stored
    streams.finish(verified, stored=True)
    assert served == ["bob"]


def test_verified_bytes_that_could_not_be_stored_are_not_counted_as_fetched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "part"
    path.write_bytes(b"x" * 10)
    streams = UploadStreams()
    with open(path, "rb") as handle:
        stream = streams.register("c" * 64, 10, frozenset({"bob"}), handle)
    stream.wrote(10)
    stream.verified()
    served: list[str] = []
    stream.after_stored(lambda: served.append("bob"))
    streams.finish(stream, stored=False)  # e.g. the disk filled up while storing
    assert stream.sendable(9, patience_s=0.0) == 10  # what was verified is still good
    stream.after_stored(lambda: served.append("late"))
    assert served == []


def test_stored_content_is_sent_at_once_while_another_upload_of_it_is_in_progress(
    server: UploadServer,
) -> None:
    # Nodes whose updates are equal upload one id: a reader must not wait on a second
    # upload (or be refused past its per-upload stream cap) when the content is stored.
    data = content(3)
    blob_id = hashlib.sha256(data).hexdigest()
    assert store(server, "alice").put_bytes(data, ["bob"]) == blob_id
    stalled = begin_upload(server, blob_id, len(data), "bob")
    stalled.sendall(data[: SIZE // 2])  # and nothing more while bob reads
    try:
        bob = store(server, "bob")
        for _ in range(3):  # more GETs than one upload's per-reader stream cap
            assert bob.get_bytes(blob_id) == data
    finally:
        stalled.close()


@contextlib.contextmanager
def bogus_upload(server: UploadServer, blob_id: str, size: int) -> Iterator[None]:
    """Eve, who knows only ``blob_id``, uploads ``size`` bytes of it naming bob: a few,
    then one every 0.2 s (never idle long enough for the server to give up on it)."""
    sock = begin_upload(server, blob_id, size, "bob", uploader="eve")
    sock.sendall(b"x" * 4096)
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.2):
            try:
                sock.sendall(b"x")
            except OSError:
                return

    dripping = threading.Thread(target=drip)
    dripping.start()
    try:
        yield
    finally:
        stop.set()
        dripping.join()
        sock.close()


def test_a_reader_held_by_a_bogus_upload_gets_the_content_once_it_is_stored(
    server: UploadServer,
) -> None:
    data = content(4)
    blob_id = hashlib.sha256(data).hexdigest()
    with bogus_upload(server, blob_id, SIZE):
        reader, result = reading(HttpBlobStore(server.url, TOKENS["bob"], retry_s=30), blob_id)
        await_streaming(server, blob_id)  # bob streams eve's upload: the only one there
        assert store(server, "alice").put_bytes(data, ["bob"]) == blob_id
        reader.join(10)  # while eve still drips
        assert result == [data], "bob was held by the bogus upload after the real one"


def test_a_bogus_upload_claiming_more_than_the_reader_expects_delays_it_only(
    server: UploadServer,
) -> None:
    data = content(5)
    blob_id = hashlib.sha256(data).hexdigest()
    with bogus_upload(server, blob_id, 4 * SIZE):
        patient = HttpBlobStore(server.url, TOKENS["bob"], retry_s=30)
        reader, result = reading(patient, blob_id, max_bytes=SIZE)
        threading.Event().wait(1.0)  # bob meets the oversized claim, and keeps trying
        assert result == []
        assert store(server, "alice").put_bytes(data, ["bob"]) == blob_id
        reader.join(10)
    assert result == [data]


def test_a_download_dripped_a_byte_at_a_time_ends_at_its_deadline(
    server: UploadServer,
) -> None:
    data = content(6)
    blob_id = hashlib.sha256(data).hexdigest()
    # Its deadline: 5 s, then SIZE at SIZE per second. The server sends what eve drips
    # every 4 s (its patience), within bob's socket timeout: only the deadline ends it.
    bob = HttpBlobStore(server.url, TOKENS["bob"], timeout_s=5, retry_s=0, min_rate_bytes_s=SIZE)
    with bogus_upload(server, blob_id, SIZE):
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="did not arrive within 6 s"):
            bob.get_bytes(blob_id)
        assert time.monotonic() - started < 9
