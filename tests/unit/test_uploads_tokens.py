"""The uploads tokens file: hashes only, atomic 0600 rewrites, revocation seen live."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from fedward.errors import ConfigError, ValidationError
from fedward.uploads.tokens import (
    TokenRegistry,
    add_token,
    hash_token,
    read_token_hashes,
    remove_token,
    set_token,
)


def test_added_token_is_stored_only_as_its_hash_in_a_private_file(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    token = add_token(tokens_file, "node-1")
    text = tokens_file.read_text()
    assert token not in text
    assert json.loads(text) == {"node-1": hash_token(token)}
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600


def test_each_added_token_is_new_and_replaces_the_old_one(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    first = add_token(tokens_file, "node-1")
    second = add_token(tokens_file, "node-1")
    assert first != second
    registry = TokenRegistry(tokens_file)
    assert registry.authenticate(second) == "node-1"
    assert registry.authenticate(first) is None


def test_registry_names_the_holder_of_each_token(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    set_token(tokens_file, "alice", "alice-token-0123456789")
    set_token(tokens_file, "bob", "bob-token-0123456789ab")
    registry = TokenRegistry(tokens_file)
    assert registry.authenticate("alice-token-0123456789") == "alice"
    assert registry.authenticate("bob-token-0123456789ab") == "bob"
    assert registry.authenticate("nobody-token-012345678") is None
    assert registry.authenticate("non-ascii-tökén-0123456") is None


def test_removed_token_stops_working_without_a_new_registry(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    token = add_token(tokens_file, "node-1")
    registry = TokenRegistry(tokens_file)
    assert registry.authenticate(token) == "node-1"
    assert remove_token(tokens_file, "node-1") is True
    assert registry.authenticate(token) is None
    assert remove_token(tokens_file, "node-1") is False


def test_file_rewritten_by_someone_else_is_reloaded(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    set_token(tokens_file, "alice", "alice-token-0123456789")
    registry = TokenRegistry(tokens_file)
    assert registry.authenticate("alice-token-0123456789") == "alice"
    # Another component (the VPN code) rewrites the file in place, same size, same second.
    before = tokens_file.stat()
    tokens_file.write_text(json.dumps({"bobby": hash_token("alice-token-0123456789")}))
    os.utime(tokens_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert registry.authenticate("alice-token-0123456789") == "bobby"


def test_missing_tokens_file_lets_nobody_in_until_it_appears(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    registry = TokenRegistry(tokens_file)
    assert registry.authenticate("alice-token-0123456789") is None
    set_token(tokens_file, "alice", "alice-token-0123456789")
    assert registry.authenticate("alice-token-0123456789") == "alice"


def test_malformed_tokens_file_refuses_everyone(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    set_token(tokens_file, "alice", "alice-token-0123456789")
    registry = TokenRegistry(tokens_file)
    tokens_file.write_text("{not json")
    with pytest.raises(ConfigError):
        registry.authenticate("alice-token-0123456789")


@pytest.mark.parametrize(
    "content",
    [
        '["alice"]',
        '{"../alice": "sha256:' + "0" * 64 + '"}',
        '{"alice": "plaintext-token"}',
    ],
)
def test_tokens_file_with_bad_entries_is_a_config_error(tmp_path: Path, content: str) -> None:
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(content)
    with pytest.raises(ConfigError):
        read_token_hashes(tokens_file)


@pytest.mark.parametrize("peer_id", ["../x", "", "a b", "x" * 65])
def test_invalid_peer_ids_are_refused(tmp_path: Path, peer_id: str) -> None:
    with pytest.raises(ValidationError):
        add_token(tmp_path / "tokens.json", peer_id)


@pytest.mark.parametrize("token", ["short", "has space in it 0123", "newline\n0123456789abc"])
def test_tokens_that_are_short_or_not_header_safe_are_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ValidationError):
        set_token(tmp_path / "tokens.json", "alice", token)


def test_concurrent_additions_all_land(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    peers = [f"node-{index}" for index in range(12)]
    threads = [threading.Thread(target=add_token, args=(tokens_file, peer)) for peer in peers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read_token_hashes(tokens_file)) == sorted(peers)
