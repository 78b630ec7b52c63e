"""The upload server's HTTP layer attacked as someone who read ``uploads.http_wire`` and
``uploads.http_connection`` would, through the real server on loopback with raw sockets
(no client library to tidy the bytes up).

Each attack must be refused in words the server documents, leave nothing on disk, and
leave the server answering the next client: request smuggling through
Transfer-Encoding or a repeated Content-Length, heads that are too large, folded,
binary or slow (slowloris), absolute-form targets and path tricks, a declared size past
the limit, and one peer holding connections open to lock the others out.
"""

from __future__ import annotations

import hashlib
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.uploads.http_connection import Timeouts
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import set_token
from tests.upload_exchange import Answer, parse_answers

TOKEN = "alice-token-0123456789"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UploadServer]:
    root = tmp_path_factory.mktemp("http-attacks")
    set_token(root / "tokens.json", "alice", TOKEN)
    timeouts = Timeouts(head_timeout_s=1.0, idle_timeout_s=2.0, io_timeout_s=2.0)
    with UploadServer(
        root / "data", root / "tokens.json", max_blob_bytes=LIMIT, timeouts=timeouts
    ) as running:
        yield running


def address(server: UploadServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def send_raw(server: UploadServer, data: bytes, source: str = "127.0.0.1") -> list[Answer]:
    """``data`` on a fresh connection, then everything the server answers until it closes."""
    with socket.create_connection(address(server), timeout=10, source_address=(source, 0)) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return parse_answers(received)


def still_serving(server: UploadServer) -> None:
    answers = send_raw(server, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert [status for status, _, _ in answers] == [200]


def incoming(server: UploadServer) -> list[Path]:
    return list((server._app.space._incoming).iterdir())


def put_head(blob_id: str, extra: str) -> bytes:
    return (
        f"PUT /blobs/{blob_id} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n"
    ).encode()


SMUGGLED = b"GET /health HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: identity\r\n",
        "Content-Length: 4\r\nContent-Length: 4\r\n",
        "Content-Length: 4, 4\r\n",
        "Content-Length: +4\r\n",
        "Content-Length : 4\r\n",
        "Content-Length: 4\r\n Content-Length: 99\r\n",  # obs-fold
    ],
)
def test_ambiguous_body_framing_is_refused_and_nothing_after_it_is_read(
    server: UploadServer, framing: str
) -> None:
    body = b"0\r\n\r\n" + SMUGGLED  # what a chunked reading would see as a second request
    answers = send_raw(server, put_head("a" * 64, framing) + body)
    assert len(answers) == 1, "a second request was smuggled through"
    status, fields, reply = answers[0]
    assert status in (400, 501)
    assert fields["connection"] == "close"
    assert json.loads(reply)["error"] == "bad_request"
    assert incoming(server) == []
    still_serving(server)


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://evil.example/blobs/" + b"0" * 64 + b" HTTP/1.1\r\n\r\n",  # absolute form
        b"GET /blobs/../objects HTTP/1.1\r\n\r\n",
        b"GET /blobs/%2e%2e/%2e%2e HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/2.0\r\n\r\n",
        b"GET  /health HTTP/1.1\r\n\r\n",
        b"get /health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\nHost: x\n\n\r\n\r\n",  # bare LF
        b"GET /health HTTP/1.1\r\nX: a\x00b\r\n\r\n",  # NUL
        b"GET /health HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",  # bytes above 0x7E
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /health HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
    ],
)
def test_malformed_heads_and_path_tricks_are_4xx_and_reach_no_file(
    server: UploadServer, head: bytes
) -> None:
    answers = send_raw(server, head)
    assert answers, "no answer at all"
    assert all(400 <= status < 500 for status, _, _ in answers)
    still_serving(server)


def test_a_head_past_16_kib_is_431_without_reading_further(server: UploadServer) -> None:
    head = b"GET /health HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20_000 + b"\r\n\r\n"
    (status, _, _), *rest = send_raw(server, head)
    assert status == 431 and rest == []
    many = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100))
    assert send_raw(server, many + b"\r\n")[0][0] == 431
    still_serving(server)


def test_a_declared_size_past_the_limit_is_413_before_any_byte_is_stored(
    server: UploadServer,
) -> None:
    for size in (LIMIT + 1, 10**19):
        answers = send_raw(server, put_head("b" * 64, f"Content-Length: {size}\r\n") + b"x" * 10)
        assert answers[0][0] == 413 and answers[0][1]["connection"] == "close"
    assert send_raw(server, put_head("b" * 64, "Content-Length: " + "9" * 21 + "\r\n"))[0][0] == 400
    assert incoming(server) == []
    still_serving(server)


def test_an_upload_without_a_length_is_411(server: UploadServer) -> None:
    assert send_raw(server, put_head("c" * 64, ""))[0][0] == 411
    still_serving(server)


def test_a_body_shorter_than_declared_then_silence_leaves_no_file(server: UploadServer) -> None:
    data = b"short"
    head = put_head(hashlib.sha256(data).hexdigest(), "Content-Length: 1000\r\n")
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(head + data)
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the io timeout, no answer owed
        assert time.monotonic() - started < 8
    assert incoming(server) == []
    still_serving(server)


def test_slowloris_head_is_cut_at_the_head_timeout_while_others_are_served(
    server: UploadServer,
) -> None:
    with socket.create_connection(address(server), timeout=10) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        closed_after = None
        for _ in range(8):
            still_serving(server)  # the others meanwhile
            try:
                slow.sendall(b"X: y\r\n")
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.4)
            reply = _peek(slow)
            if reply is not None:
                assert reply.startswith(b"HTTP/1.1 408")
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None and closed_after < 4


def _peek(sock: socket.socket) -> bytes | None:
    sock.setblocking(False)
    try:
        return sock.recv(4096, socket.MSG_PEEK) or b"closed"
    except BlockingIOError:
        return None
    finally:
        sock.setblocking(True)


def test_one_peer_holding_connections_does_not_lock_out_another(server: UploadServer) -> None:
    hogs = []
    try:
        for _ in range(100):  # more than the per-address cap of 64
            hog = socket.create_connection(address(server), source_address=("127.0.0.2", 0))
            hogs.append(hog)
        time.sleep(0.2)
        still_serving(server)  # from 127.0.0.1
        refused = sum(1 for hog in hogs if _peek(hog) is not None)
        assert refused >= 100 - 64
    finally:
        for hog in hogs:
            hog.close()


@pytest.mark.parametrize("target", ["/health", "/blobs/" + "0" * 64, "/nowhere"])
def test_a_head_request_is_answered_with_headers_only(server: UploadServer, target: str) -> None:
    # A body after a HEAD answer would be read as the start of the next answer on the
    # connection by a client or proxy that follows RFC 9110 (response desync).
    pipelined = f"HEAD {target} HTTP/1.1\r\n\r\n".encode() + SMUGGLED
    with socket.create_connection(address(server), timeout=10) as s:
        s.sendall(pipelined)
        s.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 ")
    if b"connection: close" not in head.lower():  # kept open: the next answer follows
        assert rest.startswith(b"HTTP/1.1 200 "), rest[:40]
    else:
        assert rest == b""
    still_serving(server)


def test_an_upload_that_fills_the_disk_leaves_no_file_behind(tmp_path: Path) -> None:
    # The server process may write files of 20 kB at most (its disk is "full" there):
    # the upload fails writing, and closing its file fails again on the bytes still
    # buffered. Until a restart, a partial upload left in incoming/ held its space.
    set_token(tmp_path / "tokens.json", "alice", TOKEN)
    limit = 20_000

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [
        sys.executable, "-m", "fedward.cli", "uploads", "serve", "--port", "0",
        "--data-dir", str(tmp_path / "data"), "--tokens", str(tmp_path / "tokens.json"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=small_disk
    )
    try:
        assert process.stdout is not None
        host, port = process.stdout.readline().split()[-1].decode()[7:].split(":")
        data = bytes(range(256)) * 160  # 40960 bytes
        head = put_head(hashlib.sha256(data).hexdigest(), f"Content-Length: {len(data)}\r\n")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head)
            # Pieces smaller than the server's write buffer, one at a time: the one that
            # crosses the limit is partly left in the buffer when its write fails.
            for offset in range(0, len(data), 1500):
                try:
                    sock.sendall(data[offset : offset + 1500])
                except OSError:  # answered and closed already
                    break
                time.sleep(0.02)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 5"), answer
        assert list((tmp_path / "data" / "incoming").iterdir()) == []
    finally:
        process.terminate()
        process.wait(timeout=15)
