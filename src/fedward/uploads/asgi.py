"""The small ASGI vocabulary the upload server is written in.

The server speaks raw ASGI instead of going through a framework: the upload path must
read the request body as it arrives (to hash it, write it and stop at the size limit),
and the download path must stream large files with big chunks. Both are a few lines
of ASGI; a framework would add layers without removing any of them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]


def request_header(scope: Scope, name: bytes) -> str | None:
    """The value of header ``name`` (lowercase bytes), or ``None`` when absent.

    Headers are latin-1 on the wire (RFC 9110); a repeated header yields its first value,
    which is enough for the few single-valued headers this server reads.
    """
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def send_json(
    send: Send, status: int, body: object, extra_headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    headers: Headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode("ascii")),
        (b"cache-control", b"no-store"),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Every error the server answers: ``{"error": code, "message": ...}``.

    Messages are written by this package only, never copied from an ``OSError`` or a
    traceback, so no server path or internal detail reaches a peer.
    """
    await send_json(send, status, {"error": code, "message": message}, extra_headers)
