"""``fedward node start --check`` refuses what ``start`` would refuse before connecting."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.cli import cli
from fedward.errors import ConfigError


@pytest.fixture(autouse=True)
def no_node_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NODE_ID", "FEDWARD_NODE_DIR", "FEDWARD_UPLOADS_TOKEN_FILE", "UPLOADS_URL"):
        monkeypatch.delenv(name, raising=False)


def _check(tmp_path: Path, *extra: str) -> tuple[int, str, BaseException | None]:
    args = ["node", "--node-id", "n1", "--state-dir", str(tmp_path), "start", "--check", *extra]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output, result.exception


def test_check_without_an_upload_token_fails_like_start(tmp_path: Path) -> None:
    code, output, error = _check(tmp_path)
    assert code != 0
    assert isinstance(error, ConfigError)
    assert "no upload-server token" in str(error)
    assert "node id:" not in output  # no "all is well" table


def test_check_with_a_token_prints_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("t" * 43)
    monkeypatch.setenv("FEDWARD_UPLOADS_TOKEN_FILE", str(tmp_path / "token"))
    code, output, _ = _check(tmp_path)
    assert code == 0, output
    assert "node id:       n1" in output


def test_check_names_the_thread_budget_of_each_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("t" * 43)
    monkeypatch.setenv("FEDWARD_UPLOADS_TOKEN_FILE", str(tmp_path / "token"))
    config = tmp_path / "node.toml"
    config.write_text(f'node_id = "n1"\nstate_dir = "{tmp_path}"\n[jobs]\nthreads = 3\n')
    code, output, _ = _check(tmp_path, "--config", str(config))
    assert code == 0, output
    assert "job threads:   3 threads per job (set in [jobs] threads)" in output
