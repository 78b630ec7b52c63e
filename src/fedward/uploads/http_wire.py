"""HTTP/1.1 as the upload server speaks it: strict request heads, plain response heads.

The server has three routes and one kind of client (``HttpBlobStore``), so it reads a
narrow, strict subset of HTTP/1.1 (RFC 9112) and refuses the rest with 400 and a closed
connection instead of guessing what a sender meant. Every ambiguity that request
smuggling or a confused proxy feeds on is a refusal here:

- request line ``METHOD SP origin-form SP HTTP/1.1`` (or ``HTTP/1.0``), a method made of
  uppercase letters, a target that starts with ``/`` and holds visible ASCII only;
- header lines ``name: value``: the name a token, the value visible ASCII, spaces and
  tabs; no line folding, no bare LF, no NUL, no bytes above 0x7E;
- at most ``MAX_FIELDS`` fields in at most ``MAX_HEAD_BYTES``;
- no ``Transfer-Encoding`` at all (bodies are sized by ``Content-Length`` only: there is
  no chunked decoder to disagree with), and a single-valued header (``Content-Length``,
  ``Authorization``, ``X-Fedward-Readers``, ...) given twice is refused, even with the
  same value twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from fedward.errors import ValidationError

MAX_HEAD_BYTES = 16 * 1024
MAX_FIELDS = 64
HEAD_END = b"\r\n\r\n"

_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (/[!-~]{0,2047}) HTTP/1\.([01])\Z")
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_FIELD_VALUE = re.compile(rb"[ \t!-~]*")
_DIGITS = re.compile(r"[0-9]{1,20}")
# Headers a client may legitimately repeat; any other one given twice is refused.
_REPEATABLE = frozenset({"accept", "accept-encoding", "cache-control"})
# The request carries a body the server will not decode: refused outright.
_REFUSED = frozenset({"transfer-encoding"})

Headers = list[tuple[str, str]]


class BadRequest(ValidationError):
    """Bytes that are not a request this server reads; answered 400 (or ``status``) and the
    connection closed, since nothing after them can be framed with confidence."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestHead:
    method: str
    path: str  # the target up to any '?'; the query is ignored
    minor_version: int
    fields: Mapping[str, str]  # lowercase names
    content_length: int | None  # None: not given

    def header(self, name: str) -> str | None:
        return self.fields.get(name)

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.fields.get("connection", "").split(",")}
        if self.minor_version == 0:
            return "keep-alive" in tokens
        return "close" not in tokens


def parse_head(raw: bytes) -> RequestHead:
    """The request head in ``raw`` (everything before the empty line, without it)."""
    if len(raw) > MAX_HEAD_BYTES:
        raise BadRequest(f"request head larger than {MAX_HEAD_BYTES} bytes", status=431)
    request_line, *field_lines = raw.split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise BadRequest("malformed request line (expected 'METHOD /path HTTP/1.1')")
    method, target, minor = match.groups()
    if len(field_lines) > MAX_FIELDS:
        raise BadRequest(f"more than {MAX_FIELDS} header fields", status=431)
    fields: dict[str, str] = {}
    for line in field_lines:
        raw_name, colon, raw_value = line.partition(b":")
        raw_value = raw_value.strip(b" \t")
        if not (colon and _FIELD_NAME.fullmatch(raw_name) and _FIELD_VALUE.fullmatch(raw_value)):
            raise BadRequest("malformed header line")
        name, value = raw_name.decode("ascii").lower(), raw_value.decode("ascii")
        if name in _REFUSED:
            raise BadRequest(f"{name} is not supported: send Content-Length", status=501)
        if name in fields:
            if name not in _REPEATABLE:
                raise BadRequest(f"header {name} given more than once")
            value = f"{fields[name]}, {value}"
        fields[name] = value
    path = target.decode("ascii").partition("?")[0]
    length = fields.get("content-length")
    # ASCII digits only: str.isdigit knows more digits ("²") than int() reads.
    if length is not None and not _DIGITS.fullmatch(length):
        raise BadRequest("Content-Length must be a non-negative integer")
    content_length = None if length is None else int(length)
    return RequestHead(method.decode("ascii"), path, int(minor), fields, content_length)


def response_head(status: int, fields: Iterable[tuple[str, str]]) -> bytes:
    """A status line, a Date (peers check their clock against it: ``fedward doctor``) and
    header lines, ending with the empty line."""
    reason = HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"date: {formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in fields),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def field_map(fields: Headers) -> Mapping[str, str]:
    return {name.lower(): value for name, value in fields}


def error_body(code: str, message: str) -> bytes:
    """Every error the server answers: ``{"error": code, "message": ...}``.

    Messages are written by the upload server only, never copied from an ``OSError`` or
    a traceback, so no server path or internal detail reaches a peer."""
    return json.dumps({"error": code, "message": message}, separators=(",", ":")).encode()
