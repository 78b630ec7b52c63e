"""Talking to the upload server's real connection code over a socket pair, no listener:
for tests that drive requests byte by byte, and for the fuzz target."""

from __future__ import annotations

import socket
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


def exchange(app: Any, request: bytes) -> list[Answer]:
    """Feed ``request`` (bytes as a client sends them, possibly several requests) to the
    upload server's real connection code over a socket pair; the answers as (status,
    header fields, body), in order."""
    from fedward.uploads.http_connection import Timeouts, serve_connection

    client, server = socket.socketpair()
    with client:
        with server:
            client.sendall(request)
            client.shutdown(socket.SHUT_WR)
            serve_connection(app, server, "test", timeouts=Timeouts(1.0, 1.0, 1.0))
        received = b""
        while chunk := client.recv(1 << 16):
            received += chunk
    return parse_answers(received)


def parse_answers(data: bytes) -> list[Answer]:
    answers: list[Answer] = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        pairs = (line.split(": ", 1) for line in lines)
        fields = {name.lower(): value for name, value in pairs}
        size = int(fields.get("content-length", "0"))
        if not rest or rest.startswith(b"HTTP/1.1 "):
            # An answer to HEAD: its Content-Length is that of the GET, and no body follows.
            size = 0
        answers.append((int(status_line.split(" ")[1]), fields, rest[:size]))
        data = rest[size:]
    return answers
