"""Properties of what the upload server reads from a request: method, path, headers, body.

Every request gets a JSON answer with a status the server documents (200, 201, 400,
401, 404, 405, 408, 411, 413, 431, 501), never a 500, whatever its headers hold; a blob
id in the path (also before ``/kept`` and ``/offer``) is taken only when it is exactly
64 lowercase hex digits;
``X-Fedward-Readers`` becomes valid peer ids or a 400; a blob is stored only under the
sha256 of its body.
"""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from fedward.core.ids import ID_PATTERN, SHA256_PATTERN
from fedward.errors import ValidationError
from fedward.uploads.app import _blob_id_from, _readers_from
from fedward.uploads.http_wire import parse_head
from tests.fuzz.targets import FUZZ_TOKEN, upload_request

header_names = st.sampled_from(
    [
        b"authorization",
        b"content-length",
        b"x-fedward-readers",
        b"x-fedward-confirms",
        b"content-type",
        b"x-other",
    ]
)
header_values = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            f"Bearer {FUZZ_TOKEN}".encode(),
            b"Bearer ",
            b"bearer x",
            b"5",
            b"-1",
            b"99999999999",
            b"kept",
        ]
    ),
    st.lists(st.from_regex(r"\A[A-Za-z0-9_,-]{0,70}\Z"), max_size=3).map(
        lambda ids: ",".join(ids).encode()
    ),
)
paths = st.one_of(
    st.just(b"/health"),
    st.binary(max_size=80).map(lambda b: b"/blobs/" + b),
    st.from_regex(r"\A[0-9a-fA-F]{60,66}\Z").map(lambda h: b"/blobs/" + h.encode()),
    st.tuples(
        st.from_regex(r"\A[0-9a-f]{63,65}\Z"), st.sampled_from(["kept", "offer", "x", ""])
    ).map(lambda parts: f"/blobs/{parts[0]}/{parts[1]}".encode()),
    st.binary(max_size=20),
)


@given(
    st.sampled_from([b"GET", b"PUT", b"HEAD", b"DELETE", b"POST", b"G\xffT"]),
    paths,
    st.lists(st.tuples(header_names, header_values), max_size=5),
    st.binary(max_size=64),
)
def test_every_request_gets_a_documented_answer(
    method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    lines = [method + b" " + path.replace(b" ", b"%20") + b" HTTP/1.1"]
    lines += [name + b": " + value.replace(b"\r\n", b"") for name, value in headers]
    assert upload_request(b"\r\n".join(lines) + b"\r\n\r\n" + body) >= 1


@given(st.binary(max_size=64))
def test_a_body_is_stored_only_under_its_own_sha256(body: bytes) -> None:
    real = hashlib.sha256(body).hexdigest()
    for blob_id in (real, hashlib.sha256(body + b"x").hexdigest()):
        request = (
            f"PUT /blobs/{blob_id} HTTP/1.1\r\nauthorization: Bearer {FUZZ_TOKEN}\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        assert upload_request(request) == 1


@given(st.text(max_size=80))
def test_a_blob_id_is_taken_only_when_it_is_64_lowercase_hex_digits(text: str) -> None:
    try:
        assert SHA256_PATTERN.fullmatch(_blob_id_from(text))
    except ValidationError:
        assert not (len(text) == 64 and all(c in "0123456789abcdef" for c in text))


@given(st.text(max_size=200))
def test_readers_are_valid_peer_ids_or_the_header_is_refused(header: str) -> None:
    try:
        readers = _readers_from(header)
    except ValidationError:
        return
    assert all(ID_PATTERN.fullmatch(reader) for reader in readers)


@given(st.text(st.characters(max_codepoint=255), max_size=30))
def test_content_length_is_a_non_negative_int_or_a_400(header: str) -> None:
    raw = b"PUT /blobs/x HTTP/1.1\r\ncontent-length: " + header.encode("latin-1")
    try:
        value = parse_head(raw).content_length
    except ValidationError:
        return
    assert isinstance(value, int) and value >= 0
    assert str(value) == header.strip(" \t").lstrip("0") or value == 0
