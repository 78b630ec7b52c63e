"""``fedward uploads``: the server as a separate process, and token management."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.cli import cli
from fedward.transport.http_blobs import HttpBlobStore
from fedward.uploads.tokens import read_token_hashes


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return tmp_path / "tokens.json"


@pytest.fixture
def served(tmp_path: Path, tokens_file: Path) -> Iterator[str]:
    """Start ``fedward uploads serve`` on a free port; yield the URL it printed."""
    command = [
        sys.executable, "-m", "fedward.cli", "uploads", "serve", "--port", "0",
        "--data-dir", str(tmp_path / "data"), "--tokens", str(tokens_file), "--max-blob-mb", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fedward uploads listening on http://127.0.0.1:"), line
        yield line.split()[-1]
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells.
        assert process.wait(timeout=15) in (0, -15)


def test_token_add_prints_the_token_once_and_stores_its_hash(tokens_file: Path) -> None:
    code, out, _ = run_cli("uploads", "token", "add", "node-1", "--tokens", str(tokens_file))
    assert code == 0
    token = out.strip()
    assert len(token) >= 32
    assert token not in tokens_file.read_text()
    assert list(read_token_hashes(tokens_file)) == ["node-1"]
    code, out, _ = run_cli("uploads", "token", "list", "--tokens", str(tokens_file))
    assert (code, out) == (0, "node-1\n")


def test_token_remove_revokes_and_unknown_peer_is_an_error(tokens_file: Path) -> None:
    run_cli("uploads", "token", "add", "node-1", "--tokens", str(tokens_file))
    code, _, _ = run_cli("uploads", "token", "remove", "node-1", "--tokens", str(tokens_file))
    assert code == 0
    assert json.loads(tokens_file.read_text()) == {}
    result = CliRunner().invoke(
        cli, ["uploads", "token", "remove", "node-1", "--tokens", str(tokens_file)]
    )
    assert result.exit_code != 0


def test_server_process_serves_peers_added_while_it_runs(served: str, tokens_file: Path) -> None:
    code, out, _ = run_cli("uploads", "token", "add", "researcher", "--tokens", str(tokens_file))
    assert code == 0
    with HttpBlobStore(served, out.strip(), timeout_s=10) as store:
        blob_id = store.put_bytes(b"global parameters", [])
        assert store.get_bytes(blob_id) == b"global parameters"


@pytest.mark.parametrize(
    "args",
    [["uploads"], ["uploads", "serve"], ["uploads", "token"], ["uploads", "token", "add"],
     ["uploads", "token", "remove"], ["uploads", "token", "list"]],
)  # fmt: skip
def test_every_command_has_help(args: list[str]) -> None:
    code, out, _ = run_cli(*args, "--help")
    assert code == 0
    assert "Usage:" in out


@pytest.mark.parametrize(
    ("typo", "said"),
    [("--peer-quota-m", "--peer-quota-mb"), ("--total-quota", "--total-quota-mb")],
)
def test_a_mistyped_quota_option_is_refused_naming_the_right_one(
    tmp_path: Path, tokens_file: Path, typo: str, said: str
) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--tokens", str(tokens_file), typo, "5"]
    result = CliRunner().invoke(cli, ["uploads", "serve", *args])
    assert result.exit_code == 2
    assert re.search(f"Did you mean (one of: )?'{said}'", result.stderr), result.stderr


@pytest.mark.parametrize("option", ["--peer-quota-mb", "--total-quota-mb"])
@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_a_quota_that_is_not_a_positive_number_is_refused(
    tmp_path: Path, tokens_file: Path, option: str, value: str
) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--tokens", str(tokens_file), option, value]
    result = CliRunner().invoke(cli, ["uploads", "serve", *args])
    assert result.exit_code == 2
    assert option in result.stderr
    assert not (tmp_path / "data").exists()
