"""``fedward vpn`` as a newcomer types it: options where they are typed, one error style,
ids that cannot pass for options, and notes only when there is something to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedward.cli import main


def fedward(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "vpn"
    code, out, _ = fedward(
        capsys,
        "vpn",
        "server",
        "init",
        "--public-addr",
        "vpn.example.org",
        "--state-dir",
        str(root),
    )
    assert code == 0
    assert "mqtt" not in out  # a fresh broker runs nowhere yet: nothing to copy or reload
    return root


def test_state_dir_works_after_the_subcommand_too(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, after, _ = fedward(capsys, "vpn", "list", "--state-dir", str(state_dir))
    assert code == 0 and "restful" in after
    code, before, _ = fedward(capsys, "vpn", "--state-dir", str(state_dir), "list")
    assert (code, before) == (0, after)


def test_the_subcommand_state_dir_wins_over_the_environment(
    state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDWARD_VPN_DIR", str(state_dir.parent / "elsewhere"))
    code, _, _ = fedward(capsys, "vpn", "genconf", "node", "n1", "--state-dir", str(state_dir))
    assert code == 0 and (state_dir / "config_peers" / "node" / "n1").is_dir()
    assert not (state_dir.parent / "elsewhere").exists()


def test_status_without_a_tunnel_says_error_like_every_command(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = fedward(capsys, "vpn", "status", "--state-dir", str(state_dir))
    assert code != 0
    assert err.startswith("error: no tunnel is up here")
    assert "Error:" not in err


@pytest.mark.parametrize("peer_id", ["-x", "--help", "-"])
def test_an_id_that_would_read_as_an_option_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str], peer_id: str
) -> None:
    code, _, err = fedward(
        capsys, "vpn", "--state-dir", str(state_dir), "genconf", "node", "--", peer_id
    )
    assert code != 0 and "not starting with '-'" in err
    assert not (state_dir / "config_peers" / "node").exists()


def test_the_copy_reminder_comes_once_and_only_when_broker_accounts_change(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vpn = ["vpn", "--state-dir", str(state_dir)]
    _, management, _ = fedward(capsys, *vpn, "genconf", "--with-key", "management", "monitor")
    reminder = "broker accounts and upload tokens changed"
    assert "mqtt/broker" not in management
    _, node, _ = fedward(capsys, *vpn, "genconf", "--with-key", "node", "hospital-a")
    assert node.count(reminder) == 1 and "uploads_tokens.json" in node
    _, revoked, _ = fedward(capsys, *vpn, "revoke", "node", "hospital-a")
    assert revoked.count(reminder) == 1
