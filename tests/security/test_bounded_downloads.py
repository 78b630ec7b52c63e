"""Bounded downloads: a blob larger than the caller's cap is refused before it is read whole.

Whoever names a blob id (a node's reply, a researcher's train request) may be hostile,
and so may the server or the network between. ``get_bytes``/``get_file`` with
``max_bytes`` must refuse a larger blob with a ``ValidationError`` that says the limit,
hold O(chunk) of it at most, leave no file, and the store must keep serving.

Two ways to tell a bounded client from one that reads the whole body and then
complains: the client's peak RSS growth, measured in a child process against the real
upload server (which announces the size), and the bytes a hostile server managed to
send before the client hung up, when the size is not announced (chunked, endless).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import ValidationError
from fedward.protocol.params_wire import params_file_bound, params_to_bytes
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import add_token

MIB = 1 << 20
CAP = 1 * MIB
BIG = 64 * MIB

# --- against the real upload server --------------------------------------------------------


class RealServer:
    def __init__(self, server: UploadServer, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def store(self, peer_id: str) -> HttpBlobStore:
        return HttpBlobStore(self.server.url, self.tokens[peer_id], timeout_s=30)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    root = tmp_path_factory.mktemp("bounded")
    tokens = {peer: add_token(root / "tokens.json", peer) for peer in ("researcher", "node1")}
    with UploadServer(root / "data", root / "tokens.json", max_blob_bytes=2 * BIG) as server:
        yield RealServer(server, tokens)


@pytest.fixture(scope="module")
def big_blob(real: RealServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """64 MiB the node may read, uploaded once by the researcher."""
    source = tmp_path_factory.mktemp("big") / "big.bin"
    with source.open("wb") as out:
        for index in range(BIG // MIB):
            out.write(hashlib.sha256(str(index).encode()).digest() * (MIB // 32))
    with real.store("researcher") as store:
        return store.put_file(source, ["node1"])


# Runs in a child process, so its peak RSS is the client's alone.
_CHILD = """
import json, os, resource, sys
from pathlib import Path
from fedward.errors import ValidationError
from fedward.transport.http_blobs import HttpBlobStore

url, blob_id, small_id, dest, cap = sys.argv[1:6]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
store = HttpBlobStore(url, os.environ["BLOB_TOKEN"], timeout_s=30)
store.get_bytes(small_id)  # connection open, modules loaded: the baseline
before = peak()
errors = []
for fetch in (
    lambda: store.get_bytes(blob_id, max_bytes=int(cap)),
    lambda: store.get_file(blob_id, Path(dest), max_bytes=int(cap)),
):
    try:
        fetch()
        errors.append("accepted")
    except ValidationError as exc:
        errors.append(str(exc))
growth = peak() - before
served = store.get_bytes(small_id) == b"small and honest"
print(json.dumps({"growth": growth, "errors": errors, "served_after": served}))
"""


def refuse_in_child(url: str, token: str, blob_id: str, small_id: str, dest: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, blob_id, small_id, str(dest), str(CAP)],
        env={**os.environ, "BLOB_TOKEN": token},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_blob_over_the_cap_is_refused_without_growing_the_client(
    real: RealServer, big_blob: str, tmp_path: Path
) -> None:
    with real.store("researcher") as store:
        small_id = store.put_bytes(b"small and honest", ["node1"])
    dest = tmp_path / "plans" / "plan.py"
    report = refuse_in_child(real.server.url, real.tokens["node1"], big_blob, small_id, dest)

    refusal = f"blob {big_blob} is larger than the limit of 1 MiB ({CAP} bytes)"
    assert report["errors"] == [f"{refusal} (nothing of it was kept)"] * 2
    # Reading the body before refusing it grew the client by 30 MiB or more.
    assert report["growth"] < 8 * MIB, report
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []
    assert report["served_after"]


def test_store_keeps_serving_the_same_blob_to_a_caller_with_room_for_it(
    real: RealServer, big_blob: str, tmp_path: Path
) -> None:
    with real.store("node1") as store:
        with pytest.raises(ValidationError, match="larger than the limit"):
            store.get_file(big_blob, tmp_path / "params.bin", max_bytes=BIG - 1)
        assert list(tmp_path.iterdir()) == []
        dest = store.get_file(big_blob, tmp_path / "params.bin", max_bytes=BIG)
    digest = hashlib.sha256()
    with dest.open("rb") as handle:
        while chunk := handle.read(MIB):
            digest.update(chunk)
    assert digest.hexdigest() == big_blob


def test_plan_blob_over_a_nodes_plan_cap_is_refused(real: RealServer, tmp_path: Path) -> None:
    # A "plan source" of 8 MiB, where a node would take a few hundred KiB at most.
    source = b"# plan\n" + b"x = 1\n" * (8 * MIB // 6)
    with real.store("researcher") as researcher:
        plan_blob = researcher.put_bytes(source, ["node1"])
    with real.store("node1") as node:
        with pytest.raises(ValidationError, match=r"larger than the limit of 1 MiB"):
            node.get_bytes(plan_blob, max_bytes=CAP)
        assert node.get_bytes(plan_blob, max_bytes=len(source)) == source


def test_params_blob_over_its_layouts_bound_is_refused_and_nothing_is_kept(
    real: RealServer, tmp_path: Path
) -> None:
    model = {"w": np.zeros((4, 4), np.float32)}
    padded = {**model, "padding": np.zeros(MIB, np.float32)}  # an update 4 MiB too large
    with real.store("node1") as node:
        blob = node.put_bytes(params_to_bytes(padded), ["researcher"])
    cap = params_file_bound({"w": ((4, 4), np.dtype(np.float32))})
    with real.store("researcher") as researcher:
        with pytest.raises(ValidationError, match=rf"larger than the limit of {cap} bytes"):
            researcher.get_file(blob, tmp_path / "round" / "node1.safetensors", max_bytes=cap)
        assert list((tmp_path / "round").iterdir()) == []
        honest = params_to_bytes(model)
        assert researcher.get_bytes(researcher.put_bytes(honest, []), max_bytes=cap) == honest


# --- against a hostile server that does not announce the size ------------------------------


class EndlessServer:
    """An upload server gone bad, or someone in the middle: ``GET /blobs/<id>`` gets a
    chunked body of zeros up to ``offered`` bytes, without a Content-Length (or with one,
    when ``announce``); ``small_id`` is served honestly. ``sent`` counts the body bytes
    that left before the client hung up."""

    def __init__(self, small: bytes, offered: int = 300 * MIB) -> None:
        self.small = small
        self.small_id = hashlib.sha256(small).hexdigest()
        self.offered = offered
        self.announce = False
        self.sent = 0
        self.streams: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.streams.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                head, pending = pending.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                try:
                    if path == f"/blobs/{self.small_id}":
                        conn.sendall(_response_head(f"Content-Length: {len(self.small)}"))
                        conn.sendall(self.small)
                    else:
                        self._stream(conn)
                        return
                except OSError:  # the client hung up: what we count is what left
                    return

    def _stream(self, conn: socket.socket) -> None:
        piece = b"\0" * 65536
        if self.announce:
            conn.sendall(_response_head(f"Content-Length: {self.offered}"))
            frame = piece
        else:
            conn.sendall(_response_head("Transfer-Encoding: chunked"))
            frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
        while self.sent < self.offered:
            conn.sendall(frame)
            self.sent += len(piece)
        if not self.announce:
            conn.sendall(b"0\r\n\r\n")

    def wait_streams(self) -> None:
        for thread in self.streams:
            thread.join(timeout=30)
            assert not thread.is_alive(), "the client neither read nor hung up"

    def close(self) -> None:
        self._listener.close()


def _response_head(length_header: str) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{length_header}\r\n\r\n"
    ).encode()


@pytest.fixture
def endless() -> Iterator[EndlessServer]:
    server = EndlessServer(b"small and honest")
    yield server
    server.close()


@pytest.mark.parametrize("announce", [False, True], ids=["chunked", "content-length"])
def test_endless_body_is_cut_off_just_past_the_cap(
    endless: EndlessServer, tmp_path: Path, announce: bool
) -> None:
    endless.announce = announce
    blob_id = "ab" * 32  # never checked: the cap comes first
    with HttpBlobStore(endless.url, "token-0123456789abcdef", timeout_s=30) as store:
        with pytest.raises(ValidationError, match=r"larger than the limit of 1 MiB"):
            store.get_file(blob_id, tmp_path / "plan.py", max_bytes=CAP)
        endless.wait_streams()
        assert list(tmp_path.iterdir()) == []
        # What left the server: the cap plus what the sockets' buffers took, not 300 MiB.
        assert endless.sent < CAP + 32 * MIB, endless.sent
        # The refused connection was dropped, not reused: the next request works.
        assert store.get_bytes(endless.small_id, max_bytes=CAP) == b"small and honest"
