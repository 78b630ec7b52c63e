"""The upload app driven directly through ASGI, for failures a real disk rarely shows."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from fedward.uploads.app import UploadApp, create_app
from fedward.uploads.blob_space import IncomingBlob
from fedward.uploads.tokens import set_token

TOKEN = "alice-token-0123456789"


def call(app: UploadApp, method: str, path: str, body: bytes = b"") -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
    }
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)] or [b""]
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.fixture
def app(tmp_path: Path) -> UploadApp:
    set_token(tmp_path / "tokens.json", "alice", TOKEN)
    return create_app(tmp_path / "data", tmp_path / "tokens.json", 1024 * 1024)


def reply(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return sent[0]["status"], json.loads(sent[1]["body"])


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


def test_failure_after_the_reply_started_sends_nothing_more(
    app: UploadApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"y" * 3000
    blob_id = hashlib.sha256(data).hexdigest()
    assert call(app, "PUT", f"/blobs/{blob_id}", data)[0]["status"] == 201

    class FailingRead:
        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def read(self, size: int) -> bytes:
            raise OSError(errno.EIO, "I/O error")

        def __enter__(self) -> FailingRead:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

    real_open = app._space.open_for
    monkeypatch.setattr(
        app._space, "open_for", lambda b, p: (FailingRead(real_open(b, p)[0]), len(data))
    )
    sent = call(app, "GET", f"/blobs/{blob_id}")
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert sent[0]["status"] == 200


def test_client_that_hangs_up_mid_upload_leaves_no_temp_file(
    app: UploadApp, tmp_path: Path
) -> None:
    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/blobs/" + "1" * 64,
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
    }
    messages = [{"type": "http.request", "body": b"a" * 100, "more_body": True}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == []
    assert list((tmp_path / "data" / "incoming").iterdir()) == []
