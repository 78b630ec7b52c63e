"""The upload server over real loopback HTTP, fed every kind of bad input."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import remove_token, set_token

LIMIT = 256 * 1024
TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789ab"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads-data")


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("uploads-tokens") / "tokens.json"
    for peer_id, token in TOKENS.items():
        set_token(path, peer_id, token)
    return path


@pytest.fixture(scope="module")
def server(data_dir: Path, tokens_file: Path) -> Iterator[UploadServer]:
    with UploadServer(data_dir, tokens_file, max_blob_bytes=LIMIT) as running:
        yield running


@pytest.fixture
def http(server: UploadServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def auth(peer_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[peer_id]}"}


def put(
    http: httpx.Client, data: bytes, peer_id: str = "alice", readers: str = ""
) -> httpx.Response:
    blob_id = hashlib.sha256(data).hexdigest()
    headers = {**auth(peer_id), "X-Fedward-Readers": readers}
    return http.put(f"/blobs/{blob_id}", content=data, headers=headers)


def raw_request(
    server: UploadServer, request_line: str, peer_id: str = "alice"
) -> tuple[int, bytes]:
    """Send a request line exactly as written: no client normalises the path."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = f"{request_line}\r\nHost: x\r\nAuthorization: Bearer {TOKENS[peer_id]}\r\n"
        sock.sendall(f"{head}Connection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.partition(b"\r\n\r\n")[2]


def incoming_files(data_dir: Path) -> list[Path]:
    return list((data_dir / "incoming").iterdir())


def test_health_needs_no_token(http: httpx.Client) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_upload_then_download_by_uploader_and_named_reader(http: httpx.Client) -> None:
    data = os.urandom(100_000)
    response = put(http, data, readers="bob")
    assert response.status_code == 201
    blob_id = hashlib.sha256(data).hexdigest()
    assert response.json() == {"blob_id": blob_id, "size": len(data)}
    for peer_id in ("alice", "bob"):
        download = http.get(f"/blobs/{blob_id}", headers=auth(peer_id))
        assert download.status_code == 200
        assert download.content == data
        assert download.headers["content-length"] == str(len(data))


def test_reupload_adds_readers_and_answers_200(http: httpx.Client) -> None:
    data = b"shared plan source"
    blob_id = hashlib.sha256(data).hexdigest()
    assert put(http, data).status_code == 201
    assert http.get(f"/blobs/{blob_id}", headers=auth("bob")).status_code == 404
    again = put(http, data, readers="bob")
    assert again.status_code == 200
    assert again.json() == {"blob_id": blob_id, "size": len(data)}
    assert http.get(f"/blobs/{blob_id}", headers=auth("bob")).content == data
    assert http.get(f"/blobs/{blob_id}", headers=auth("alice")).content == data


def test_content_that_does_not_match_its_id_is_refused_and_not_kept(
    http: httpx.Client, data_dir: Path
) -> None:
    claimed = hashlib.sha256(b"what I claim").hexdigest()
    response = http.put(f"/blobs/{claimed}", content=b"what I send", headers=auth("alice"))
    assert response.status_code == 400
    assert response.json()["error"] == "integrity"
    assert http.get(f"/blobs/{claimed}", headers=auth("alice")).status_code == 404
    assert incoming_files(data_dir) == []


def test_knowing_an_id_without_its_content_gives_no_access(http: httpx.Client) -> None:
    secret = b"alice's private parameters"
    blob_id = hashlib.sha256(secret).hexdigest()
    assert put(http, secret).status_code == 201
    forged = http.put(
        f"/blobs/{blob_id}", content=b"anything", headers={**auth("bob"), "X-Fedward-Readers": ""}
    )
    assert forged.status_code == 400
    assert http.get(f"/blobs/{blob_id}", headers=auth("bob")).status_code == 404


def test_missing_blob_and_unreadable_blob_answer_the_same_404(http: httpx.Client) -> None:
    data = b"only for alice"
    assert put(http, data).status_code == 201
    not_reader = http.get(f"/blobs/{hashlib.sha256(data).hexdigest()}", headers=auth("bob"))
    missing = http.get(f"/blobs/{'0' * 64}", headers=auth("bob"))
    assert not_reader.status_code == missing.status_code == 404
    assert not_reader.json()["error"] == missing.json()["error"] == "not_found"
    assert not_reader.headers.keys() == missing.headers.keys()


def test_upload_announced_over_the_limit_is_refused_before_reading(
    http: httpx.Client, data_dir: Path
) -> None:
    data = os.urandom(LIMIT + 1)
    response = put(http, data)
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "too_large"
    assert str(LIMIT) in body["message"]
    assert incoming_files(data_dir) == []
    assert http.get("/health").status_code == 200


def test_chunked_upload_is_refused_with_the_fix_and_leaves_nothing(
    http: httpx.Client, data_dir: Path
) -> None:
    data = os.urandom(LIMIT * 3)
    blob_id = hashlib.sha256(data).hexdigest()

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        for start in range(0, len(data), 32 * 1024):
            yield data[start : start + 32 * 1024]

    try:
        response = http.put(f"/blobs/{blob_id}", content=chunks(), headers=auth("alice"))
        assert response.status_code == 501
        assert "Content-Length" in response.json()["message"]
    except httpx.TransportError:
        pass  # the server may close before the client finished sending; both are refusals
    assert incoming_files(data_dir) == []
    assert put(http, b"still serving").status_code in (200, 201)


def test_upload_exactly_at_the_limit_is_accepted(http: httpx.Client) -> None:
    assert put(http, os.urandom(LIMIT)).status_code == 201


def test_missing_token_is_401_with_a_bearer_challenge(http: httpx.Client) -> None:
    response = http.get(f"/blobs/{'0' * 64}")
    assert response.status_code == 401
    assert response.json()["error"] == "access_denied"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token-0123456789", "Basic YWxpY2U6cHc=", "Bearer", "alice-token"]
)
def test_wrong_or_malformed_credentials_are_401(http: httpx.Client, header: str) -> None:
    response = http.put(
        f"/blobs/{hashlib.sha256(b'x').hexdigest()}",
        content=b"x",
        headers={"Authorization": header},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "access_denied"


@pytest.mark.parametrize(
    "target",
    [
        "/blobs/../x",
        "/blobs/..%2fx",
        "/blobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/blobs/" + "A" * 64,
        "/blobs/" + "0" * 63,
        "/blobs/" + "0" * 64 + "/extra",
        "/blobs/" + "0" * 62 + "%00",
        "/blobs/",
    ],
)
def test_malformed_blob_ids_are_400_and_reach_no_file(server: UploadServer, target: str) -> None:
    status, body = raw_request(server, f"GET {target} HTTP/1.1")
    assert status == 400
    assert json.loads(body)["error"] == "invalid"


def test_there_is_no_list_or_delete_for_peers(http: httpx.Client) -> None:
    data = b"cannot be deleted"
    assert put(http, data).status_code == 201
    blob_id = hashlib.sha256(data).hexdigest()
    assert http.delete(f"/blobs/{blob_id}", headers=auth("alice")).status_code == 405
    assert http.get("/blobs", headers=auth("alice")).status_code == 404
    assert http.get("/blobs/", headers=auth("alice")).status_code == 400
    assert http.get(f"/blobs/{blob_id}", headers=auth("alice")).content == data


def test_invalid_reader_names_are_refused(http: httpx.Client) -> None:
    response = put(http, b"readers", readers="bob,../etc")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_errors_never_mention_server_paths(http: httpx.Client, data_dir: Path) -> None:
    answers = [
        http.get(f"/blobs/{'0' * 64}", headers=auth("alice")),
        http.get("/blobs/../../etc/passwd", headers=auth("alice")),
        put(http, os.urandom(LIMIT + 1)),
        http.put(f"/blobs/{'0' * 64}", content=b"x", headers=auth("alice")),
    ]
    for answer in answers:
        assert str(data_dir) not in answer.text
        assert "Traceback" not in answer.text
        assert set(answer.json()) == {"error", "message"}


def test_content_and_readers_survive_a_restart(tmp_path: Path, tokens_file: Path) -> None:
    data = os.urandom(50_000)
    blob_id = hashlib.sha256(data).hexdigest()
    with UploadServer(tmp_path, tokens_file) as first, httpx.Client(base_url=first.url) as http:
        assert put(http, data, readers="bob").status_code == 201
    with UploadServer(tmp_path, tokens_file) as second, httpx.Client(base_url=second.url) as http:
        assert http.get(f"/blobs/{blob_id}", headers=auth("bob")).content == data
        assert put(http, data).status_code == 200


def test_rewriting_the_tokens_file_revokes_at_once(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    set_token(tokens_file, "alice", TOKENS["alice"])
    set_token(tokens_file, "bob", TOKENS["bob"])
    with (
        UploadServer(tmp_path / "data", tokens_file) as running,
        httpx.Client(base_url=running.url) as http,
    ):
        data = b"revocation"
        assert put(http, data, readers="bob").status_code == 201
        blob_id = hashlib.sha256(data).hexdigest()
        assert http.get(f"/blobs/{blob_id}", headers=auth("bob")).status_code == 200
        remove_token(tokens_file, "bob")
        assert http.get(f"/blobs/{blob_id}", headers=auth("bob")).status_code == 401
        assert http.get(f"/blobs/{blob_id}", headers=auth("alice")).status_code == 200
        set_token(tokens_file, "bob", "bob-new-token-0123456789")
        renewed = {"Authorization": "Bearer bob-new-token-0123456789"}
        assert http.get(f"/blobs/{blob_id}", headers=renewed).status_code == 200


def test_unusable_tokens_file_refuses_everyone_with_503(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    set_token(tokens_file, "alice", TOKENS["alice"])
    with (
        UploadServer(tmp_path / "data", tokens_file) as running,
        httpx.Client(base_url=running.url) as http,
    ):
        tokens_file.write_text("{broken")
        response = http.get(f"/blobs/{'0' * 64}", headers=auth("alice"))
        assert response.status_code == 503
        assert str(tokens_file) not in response.text


def test_simultaneous_uploads_of_one_blob_keep_every_reader(
    server: UploadServer, data_dir: Path
) -> None:
    data = os.urandom(200_000)
    blob_id = hashlib.sha256(data).hexdigest()
    readers = ["r1", "r2", "r3", "r4", "r5", "r6"]

    def upload(reader: str) -> int:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            return put(client, data, readers=reader).status_code

    with ThreadPoolExecutor(len(readers)) as pool:
        statuses = list(pool.map(upload, readers))
    assert set(statuses) <= {200, 201}
    sidecar = data_dir / "readers" / blob_id[:2] / f"{blob_id}.json"
    assert set(json.loads(sidecar.read_text())["readers"]) == {"alice", *readers}
