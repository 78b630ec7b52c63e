"""One authenticated peer trying to fill the upload server's disk, through the real
``fedward uploads serve`` process on loopback.

Any node or researcher token may upload; without a quota one peer could upload until
the disk is full (blobs naming readers that never fetch them wait for the idle time),
and every other site's round would fail. Each attack must be refused with 507 before a
byte is kept, name the setting to raise, and leave the other peers uploading.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import QuotaExceeded
from fedward.protocol.params_wire import params_to_bytes
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.tokens import set_token
from tests.upload_exchange import parse_answers

TOKENS = {peer: f"{peer}-token-0123456789abcdef" for peer in ("alice", "bob", "carol")}
MIB = 1024 * 1024
BLOB = 1_000_000  # bytes: two fit in a 2 MiB quota, three do not


def blob(seed: int, size: int = BLOB) -> bytes:
    return bytes([seed % 256]) * size


def parameters(seed: int) -> bytes:
    """A parameters file (safetensors) of about ``BLOB`` bytes: what retention deletes
    once its readers fetched it."""
    return params_to_bytes({"w": np.full(BLOB // 4 - 32, seed, dtype=np.float32)})


@contextmanager
def serving(data_dir: Path, tokens: Path, *options: str) -> Iterator[str]:
    """``fedward uploads serve`` as its own process; yields its URL."""
    command = [
        sys.executable, "-m", "fedward.cli", "uploads", "serve", "--port", "0",
        "--data-dir", str(data_dir), "--tokens", str(tokens), "--max-blob-mb", "2", *options,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fedward uploads listening on http://"), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    for peer, token in TOKENS.items():
        set_token(path, peer, token)
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@contextmanager
def peer(url: str, name: str) -> Iterator[HttpBlobStore]:
    with HttpBlobStore(url, TOKENS[name], timeout_s=10) as store:
        yield store


def stored_ids(data_dir: Path) -> set[str]:
    return {path.name for path in (data_dir / "objects").glob("*/*")}


def raw_put(url: str, name: str, data: bytes, *, body: bool = True) -> tuple[int, dict[str, str]]:
    """A PUT with a plain socket; ``body=False`` sends the head alone (a declared size
    the peer need not even have): the answer must come before any byte of it."""
    host, port = url.removeprefix("http://").split(":")
    blob_id = hashlib.sha256(data).hexdigest()
    head = (
        f"PUT /blobs/{blob_id} HTTP/1.1\r\nAuthorization: Bearer {TOKENS[name]}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + (data if body else b""))
        if not body:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status, _, reply = parse_answers(received)[0]
    return status, json.loads(reply)


def test_a_peer_past_its_quota_gets_507_with_nothing_kept_while_others_upload(
    data_dir: Path, tokens: Path
) -> None:
    with serving(data_dir, tokens, "--peer-quota-mb", "2") as url:
        with peer(url, "alice") as alice:
            kept = {alice.put_bytes(blob(1), ["bob"]), alice.put_bytes(blob(2), ["bob"])}
            started = time.monotonic()
            with pytest.raises(QuotaExceeded) as refused:
                alice.put_bytes(blob(3), ["bob"])
            assert time.monotonic() - started < 5, "a quota refusal must not be retried"
        assert "--peer-quota-mb" in str(refused.value)
        # The head alone is refused: the server does not wait for (or keep) the body.
        status, answer = raw_put(url, "alice", blob(4), body=False)
        assert (status, answer["error"]) == (507, "quota_exceeded")
        assert "--peer-quota-mb" in answer["message"]
        assert stored_ids(data_dir) == kept
        assert list((data_dir / "incoming").iterdir()) == []
        with peer(url, "bob") as bob:
            other = bob.put_bytes(blob(5), ["alice"])
            assert bob.get_bytes(other) == blob(5)
        with peer(url, "alice") as alice:  # what it stored already, it may send again
            assert alice.put_bytes(blob(1), ["bob"]) in kept


def test_the_total_quota_refuses_every_peer_once_the_server_is_full(
    data_dir: Path, tokens: Path
) -> None:
    options = ("--peer-quota-mb", "2", "--total-quota-mb", "3")
    with serving(data_dir, tokens, *options) as url:
        with peer(url, "alice") as alice:
            alice.put_bytes(blob(1), ["bob"])
            alice.put_bytes(blob(2), ["bob"])
        with peer(url, "bob") as bob:
            bob.put_bytes(blob(3), ["alice"])
            with pytest.raises(QuotaExceeded) as refused:
                bob.put_bytes(blob(4), ["alice"])
        assert "--total-quota-mb" in str(refused.value)
        status, answer = raw_put(url, "carol", blob(5, 200_000))
        assert (status, answer["error"]) == (507, "quota_exceeded")
        assert len(stored_ids(data_dir)) == 3
        assert list((data_dir / "incoming").iterdir()) == []


def test_uploads_in_progress_count_until_they_end(data_dir: Path, tokens: Path) -> None:
    # Declared sizes are reserved when an upload starts: many uploads at once cannot
    # each pass the check and together go past the quota.
    with serving(data_dir, tokens, "--peer-quota-mb", "2") as url:
        host, port = url.removeprefix("http://").split(":")
        pending = blob(1, 1_500_000)
        head = (
            f"PUT /blobs/{hashlib.sha256(pending).hexdigest()} HTTP/1.1\r\n"
            f"Authorization: Bearer {TOKENS['alice']}\r\nContent-Length: {len(pending)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(head)
            assert sock.recv(4096).startswith(b"HTTP/1.1 100 "), "the upload never started"
            status, _ = raw_put(url, "alice", blob(2))
            assert status == 507
        # The first upload's connection is gone: its reservation with it.
        deadline = time.monotonic() + 10
        while (status := raw_put(url, "alice", blob(2))[0]) == 507:
            assert time.monotonic() < deadline, "a failed upload kept its reservation"
            time.sleep(0.1)
        assert status == 201
        assert list((data_dir / "incoming").iterdir()) == []


def test_the_quota_frees_once_retention_deletes_what_was_fetched(
    data_dir: Path, tokens: Path
) -> None:
    options = ("--peer-quota-mb", "2", "--keep-fetched-s", "0", "--gc-interval-s", "0.1")
    with serving(data_dir, tokens, *options) as url, peer(url, "alice") as alice:
        first = alice.put_bytes(parameters(1), ["bob"])
        alice.put_bytes(parameters(2), ["bob"])
        with pytest.raises(QuotaExceeded):
            alice.put_bytes(parameters(3), ["bob"])
        with peer(url, "bob") as bob:
            bob.get_bytes(first)
        deadline = time.monotonic() + 10
        while True:
            try:
                alice.put_bytes(parameters(3), ["bob"])
                break
            except QuotaExceeded:
                assert time.monotonic() < deadline, "deleting a blob never freed its quota"
                time.sleep(0.1)
        assert first not in stored_ids(data_dir)


def test_a_restarted_server_counts_what_is_on_disk(data_dir: Path, tokens: Path) -> None:
    with serving(data_dir, tokens, "--peer-quota-mb", "2") as url, peer(url, "alice") as alice:
        alice.put_bytes(blob(1), ["bob"])
        alice.put_bytes(blob(2), ["bob"])
    with serving(data_dir, tokens, "--peer-quota-mb", "2") as url:
        with peer(url, "alice") as alice, pytest.raises(QuotaExceeded):
            alice.put_bytes(blob(3), ["bob"])
        with peer(url, "bob") as bob:
            bob.put_bytes(blob(4), ["alice"])
    with serving(data_dir, tokens, "--peer-quota-mb", "2", "--total-quota-mb", "3") as url:
        with peer(url, "carol") as carol, pytest.raises(QuotaExceeded) as refused:
            carol.put_bytes(blob(5), ["alice"])
        assert "--total-quota-mb" in str(refused.value)
