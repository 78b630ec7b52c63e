"""``fedward node plan diff``: a researcher's new version against the approved one."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from fedward.cli import cli
from fedward.errors import NotFound
from fedward.node.services import open_node_services

V1 = '''class TumourLR:
    """Logistic regression."""

    RATE = 0.1  # tuned

    def train(self, data):
        return data
'''
# Version 2 changes one constant, and comments that do not run.
V2 = V1.replace("RATE = 0.1  # tuned", "# retuned after review\n    RATE = 0.05")
# Version 3 is pending too, after version 2.
V3 = V1.replace("0.1", "0.2")


def node(state_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["node", "--node-id", "hospital-a", "--state-dir", str(state_dir), *args]
    )
    if result.exception is not None:
        raise result.exception
    return result.output


def test_diff_compares_with_the_approved_version_in_the_text_that_runs(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    services = open_node_services(state_dir / "node.sqlite3", None)
    try:
        v1 = services.plans.request(V1, "TumourLR", "", "researcher1")
        services.plans.approve(v1.plan_id, "paula")
        v2 = services.plans.request(V2, "TumourLR", "", "researcher1")
        v3 = services.plans.request(V3, "TumourLR", "", "researcher1")
    finally:
        services.close()

    shown = node(state_dir, "plan", "diff", v3.plan_id)
    assert "1 added, 1 removed lines" in shown
    assert f"--- TumourLR v1 (approved) {v1.plan_id}" in shown
    assert "-    RATE = 0.1\n+    RATE = 0.2" in shown
    assert "tuned" not in shown  # comments do not run, so they are not compared

    previous = node(state_dir, "plan", "diff", v3.plan_id, "--against", "previous")
    assert f"--- TumourLR v2 (pending) {v2.plan_id}" in previous

    listed = node(state_dir, "plan", "list")
    assert "v1" in listed and "v3" in listed and "researcher1" in listed
    try:
        node(state_dir, "plan", "diff", v1.plan_id, "--against", "previous")
    except NotFound as exc:
        assert "version 1" in str(exc)
    else:
        raise AssertionError("version 1 has no previous version to compare with")
