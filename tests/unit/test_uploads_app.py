"""The upload routes driven over a socket pair, for failures a real disk rarely shows."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fedward.uploads.app import UploadApp, create_app
from fedward.uploads.incoming_blob import IncomingBlob
from fedward.uploads.tokens import set_token
from tests.upload_exchange import Answer, exchange

TOKEN = "alice-token-0123456789"


def request(method: str, path: str, body: bytes = b"", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = f"{method} {path} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
    if method == "PUT":
        head += f"Content-Length: {size}\r\n"
    return f"{head}\r\n".encode() + body


def call(app: UploadApp, method: str, path: str, body: bytes = b"") -> list[Answer]:
    return exchange(app, request(method, path, body))


@pytest.fixture
def app(tmp_path: Path) -> UploadApp:
    set_token(tmp_path / "tokens.json", "alice", TOKEN)
    return create_app(tmp_path / "data", tmp_path / "tokens.json", 1024 * 1024)


def reply(answers: list[Answer]) -> tuple[int, dict[str, Any]]:
    status, _, body = answers[0]
    return status, json.loads(body)


def test_full_disk_is_507_and_leaves_no_temp_file(
    app: UploadApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: IncomingBlob, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path))

    monkeypatch.setattr(IncomingBlob, "write", full)
    data = b"x" * 5000
    status, body = reply(call(app, "PUT", f"/blobs/{hashlib.sha256(data).hexdigest()}", data))
    assert (status, body["error"]) == (507, "storage")
    assert str(tmp_path) not in json.dumps(body)
    assert list((tmp_path / "data" / "incoming").iterdir()) == []


def test_unexpected_failure_is_a_plain_500(app: UploadApp, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app._space, "open_for", broken)
    status, body = reply(call(app, "GET", "/blobs/" + "0" * 64))
    assert (status, body["error"]) == (500, "internal")
    assert "secret" not in body["message"]


def test_a_file_that_shrinks_mid_download_ends_the_connection_short(
    app: UploadApp, tmp_path: Path
) -> None:
    data = b"y" * 3000
    blob_id = hashlib.sha256(data).hexdigest()
    assert call(app, "PUT", f"/blobs/{blob_id}", data)[0][0] == 201
    stored = tmp_path / "data" / "objects" / blob_id[:2] / blob_id
    real_open = app._space.open_for

    def open_then_truncate(b: str, p: str) -> Any:
        handle, size = real_open(b, p)
        stored.write_bytes(data[:100])  # the content changes under the reader
        return handle, size

    app._space.open_for = open_then_truncate  # type: ignore[method-assign]
    answers = exchange(app, request("GET", f"/blobs/{blob_id}") + request("GET", "/health"))
    status, fields, body = answers[0]
    assert status == 200 and fields["content-length"] == str(len(data))
    assert len(body) < len(data)  # cut short: the client's hash check refuses it
    assert len(answers) == 1  # and the connection ended there


def test_client_that_hangs_up_mid_upload_leaves_no_temp_file(
    app: UploadApp, tmp_path: Path
) -> None:
    sent = request("PUT", "/blobs/" + "1" * 64, b"a" * 100, length=5000)
    assert exchange(app, sent) == []
    assert list((tmp_path / "data" / "incoming").iterdir()) == []


def test_pipelined_requests_are_answered_in_order_on_one_connection(app: UploadApp) -> None:
    data = b"pipelined"
    blob_id = hashlib.sha256(data).hexdigest()
    both = request("PUT", f"/blobs/{blob_id}", data) + request("GET", f"/blobs/{blob_id}")
    (put_status, _, _), (get_status, _, content) = exchange(app, both)
    assert (put_status, get_status, content) == (201, 200, data)
