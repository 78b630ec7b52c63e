"""Blobs the upload server no longer needs are deleted; the ones still needed are not.

Real server over loopback, real clients (``HttpBlobStore``); collection is run by hand
(``collect`` with a chosen ``now``) so that no test waits for a clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fedward.cli import cli
from fedward.errors import NotFound
from fedward.protocol.params_wire import params_to_bytes
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.retention import RetentionPolicy, collect
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import set_token

TOKENS = {p: f"{p}-token-0123456789abcdef" for p in ("researcher", "node1", "node2")}
POLICY = RetentionPolicy(keep_fetched_s=10, keep_idle_s=3600)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UploadServer]:
    tokens = tmp_path / "tokens.json"
    for peer, token in TOKENS.items():
        set_token(tokens, peer, token)
    with UploadServer(tmp_path / "data", tokens) as running:
        yield running


@pytest.fixture
def peers(server: UploadServer) -> Iterator[dict[str, HttpBlobStore]]:
    stores = {peer: HttpBlobStore(server.url, token) for peer, token in TOKENS.items()}
    yield stores
    for store in stores.values():
        store.close()


def space(server: UploadServer):  # type: ignore[no-untyped-def]
    return server._app.space  # the server's own store, as its collector sees it


def fetch(server: UploadServer, store: HttpBlobStore, reader: str, blob: str) -> bytes:
    """Download, then wait until the server recorded it: it does so after the last byte
    went out, so the client may be done first."""
    data = store.get_bytes(blob)
    deadline = time.monotonic() + 10
    while reader not in getattr(space(server).record_of(blob), "fetched_by", ()):
        assert time.monotonic() < deadline, "the server never recorded the fetch"
        time.sleep(0.01)
    return data


def parameters(seed: int) -> bytes:
    return params_to_bytes({"w": np.full(1000, seed, dtype=np.float32)})


def test_parameters_go_once_every_reader_fetched_them_and_the_delay_passed(
    server: UploadServer, peers: dict[str, HttpBlobStore]
) -> None:
    blob = peers["researcher"].put_bytes(parameters(1), ["node1", "node2"])
    fetch(server, peers["node1"], "node1", blob)
    assert collect(space(server), POLICY, now=time.time() + 3600 - 1).blobs == 0  # node2 waits

    fetch(server, peers["node2"], "node2", blob)
    assert collect(space(server), POLICY, now=time.time() + 5).blobs == 0  # within the delay
    collected = collect(space(server), POLICY, now=time.time() + 10)
    assert (collected.blobs, collected.kept) == (1, 0)
    assert collected.bytes >= 4000
    with pytest.raises(NotFound):
        fetch(server, peers["node1"], "node1", blob)


def test_an_update_goes_once_the_researcher_fetched_it(
    server: UploadServer, peers: dict[str, HttpBlobStore]
) -> None:
    blob = peers["node1"].put_bytes(parameters(2), ["researcher"])
    assert collect(space(server), POLICY, now=time.time() + 60).blobs == 0
    fetch(server, peers["researcher"], "researcher", blob)
    assert collect(space(server), POLICY, now=time.time() + 60).blobs == 1


def test_a_plan_stays_after_every_node_read_it_until_it_is_idle(
    server: UploadServer, peers: dict[str, HttpBlobStore]
) -> None:
    # Nodes read a plan again after a restart: it is not a one-round message.
    blob = peers["researcher"].put_bytes(b"class Plan:\n    pass\n", ["node1", "node2"])
    for node in ("node1", "node2"):
        fetch(server, peers[node], node, blob)
    assert collect(space(server), POLICY, now=time.time() + 600).blobs == 0
    assert collect(space(server), POLICY, now=time.time() + 3600).blobs == 1


def test_uploading_the_same_parameters_again_serves_them_again(
    server: UploadServer, peers: dict[str, HttpBlobStore]
) -> None:
    # A resumed round sends the same global parameters: the nodes must find them.
    data = parameters(3)  # (safetensors orders its metadata at random: make the bytes once)
    blob = peers["researcher"].put_bytes(data, ["node1"])
    fetch(server, peers["node1"], "node1", blob)
    assert peers["researcher"].put_bytes(data, ["node1"]) == blob
    assert collect(space(server), POLICY, now=time.time() + 60).blobs == 0
    assert peers["node1"].get_bytes(blob) == data


def test_parameters_a_reader_never_fetched_go_when_idle(
    server: UploadServer, peers: dict[str, HttpBlobStore]
) -> None:
    peers["researcher"].put_bytes(parameters(4), ["node2"])  # node2 went offline
    assert collect(space(server), POLICY, now=time.time() + 600).blobs == 0
    assert collect(space(server), POLICY, now=time.time() + 3600).blobs == 1


def test_the_background_collector_deletes_served_parameters(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    for peer, token in TOKENS.items():
        set_token(tokens, peer, token)
    policy = RetentionPolicy(keep_fetched_s=0, keep_idle_s=3600)
    with (
        UploadServer(tmp_path / "data", tokens, retention=policy, gc_interval_s=0.05) as server,
        HttpBlobStore(server.url, TOKENS["researcher"]) as researcher,
        HttpBlobStore(server.url, TOKENS["node1"]) as node,
    ):
        blob = researcher.put_bytes(parameters(5), ["node1"])
        node.get_bytes(blob)  # (the collector may delete it before we could look)
        deadline = time.monotonic() + 30
        objects = tmp_path / "data" / "objects"
        while any(p.is_file() for p in objects.glob("*/*")):
            assert time.monotonic() < deadline, "the collector never ran"
            time.sleep(0.05)


def test_fedward_uploads_gc_says_what_it_deleted(
    server: UploadServer, peers: dict[str, HttpBlobStore], tmp_path: Path
) -> None:
    blob = peers["researcher"].put_bytes(parameters(6), ["node1"])
    fetch(server, peers["node1"], "node1", blob)
    data = str(tmp_path / "data")
    runner = CliRunner()
    dry = runner.invoke(
        cli, ["uploads", "gc", "--data-dir", data, "--keep-fetched-s", "0", "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    assert "would delete 1 blob(s)" in dry.output
    assert fetch(server, peers["node1"], "node1", blob)
    done = runner.invoke(cli, ["uploads", "gc", "--data-dir", data, "--keep-fetched-s", "0"])
    assert done.exit_code == 0, done.output
    assert "deleted 1 blob(s)" in done.output
    with pytest.raises(NotFound):
        fetch(server, peers["node1"], "node1", blob)
