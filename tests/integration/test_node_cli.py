"""``fedward node ...`` against a real SQLite database in a temporary state directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from fedward.cli import cli
from fedward.core.plan_digest import plan_digest
from fedward.errors import Conflict, DatasetError, NotFound, PlanError
from fedward.node.privacy_ledger import PrivacyLedger
from fedward.node.services import open_node_services
from fedward.privacy.accounting import PrivacyEvent

PLAN = '''
class LinearPlan:
    """A plan."""

    RATE = 0.1
'''


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "table.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    return root


Invoke = Callable[..., Result]


@pytest.fixture
def run(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    for name in (
        "NODE_ID",
        "FEDWARD_NODE_DIR",
        "FEDWARD_DATA_ROOT",
        "ENABLE_TRAINING_PLAN_APPROVAL",
    ):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str, answer: str | None = None) -> Result:
        return runner.invoke(
            cli,
            ["node", "--node-id", "hospital-a", "--state-dir", str(state_dir), *args],
            input=answer,
        )

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def first_id(output: str, prefix: str) -> str:
    match = re.search(rf"\b{prefix}-[0-9a-f]{{12}}\b", output)
    assert match, output
    return match.group(0)


def test_every_command_has_help() -> None:
    runner = CliRunner()

    def walk(command: click.Command, path: list[str]) -> None:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    from fedward.node.cli import node

    walk(node, ["node"])
    assert "start" in node.commands


def test_dataset_add_list_show_delete(run: Invoke, data_root: Path) -> None:
    added = ok(
        run(
            "dataset", "add", "--type", "csv", "--path", str(data_root / "table.csv"),
            "--name", "Table", "--tags", "cancer,breast", "--description", "three rows",
        )
    )  # fmt: skip
    dataset_id = first_id(added, "dataset")
    assert "3 samples" in added
    listing = ok(run("dataset", "list"))
    assert dataset_id in listing and "cancer,breast" in listing and "Table" in listing
    shown = ok(run("dataset", "show", dataset_id))
    assert "three rows" in shown and "preview:" in shown and "label" in shown
    assert str(data_root / "table.csv") in shown  # the admin may see the path; researchers never
    assert f"deleted dataset {dataset_id}" in ok(run("dataset", "delete", dataset_id))
    assert "no datasets" in ok(run("dataset", "list"))


def test_dataset_add_from_file(run: Invoke, data_root: Path) -> None:
    spec = data_root / "spec.json"
    spec.write_text(json.dumps({"data_type": "csv", "path": "table.csv", "name": "F", "tags": "x"}))
    dataset_id = first_id(ok(run("dataset", "add", "--from-file", str(spec))), "dataset")
    assert dataset_id in ok(run("dataset", "list"))


def test_dataset_add_needs_every_field_or_a_file(run: Invoke, data_root: Path) -> None:
    result = run("dataset", "add", "--type", "csv", "--name", "N")
    assert result.exit_code == 2
    assert "--path" in result.output and "--tags" in result.output
    spec = data_root / "spec.json"
    spec.write_text("{}")
    mixed = run("dataset", "add", "--from-file", str(spec), "--name", "N")
    assert mixed.exit_code == 2


def test_refused_dataset_raises_a_fedward_error_and_changes_nothing(
    run: Invoke, data_root: Path
) -> None:
    csv = str(data_root / "table.csv")
    ok(run("dataset", "add", "--type", "csv", "--path", csv, "--name", "A", "--tags", "a,b"))
    before = ok(run("dataset", "list"))
    conflict = run("dataset", "add", "--type", "csv", "--path", csv, "--name", "B", "--tags", "a")
    assert isinstance(conflict.exception, DatasetError)
    missing = run("dataset", "show", "dataset-000000000000")
    assert isinstance(missing.exception, NotFound)
    assert ok(run("dataset", "list")) == before


def test_dataset_delete_all_asks_first(run: Invoke, data_root: Path) -> None:
    csv = str(data_root / "table.csv")
    for tag in ("one", "two"):
        ok(run("dataset", "add", "--type", "csv", "--path", csv, "--name", tag, "--tags", tag))
    assert run("dataset", "delete", "--all", answer="n\n").exit_code == 1
    assert "one" in ok(run("dataset", "list"))
    assert "deleted 2 dataset(s)" in ok(run("dataset", "delete", "--all", "--yes"))
    assert run("dataset", "delete").exit_code == 2


def test_plan_lifecycle(run: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "plan.py"
    source.write_text(PLAN)
    registered = ok(run("plan", "register", str(source), "--class", "LinearPlan", "--name", "lin"))
    plan_id = first_id(registered, "plan")
    assert "pending" in registered
    assert "pending" in ok(run("plan", "list", "--status", "pending"))
    assert f"plan {plan_id} approved" in ok(run("plan", "approve", plan_id, "--notes", "fine"))
    again = run("plan", "approve", plan_id)
    assert isinstance(again.exception, Conflict)
    assert "already approved" in str(again.exception)
    viewed = ok(run("plan", "view", plan_id))
    assert "approved" in viewed and "fine" in viewed and "RATE = 0.1" in viewed
    assert run("plan", "reject", plan_id).exit_code == 2  # --notes is required
    ok(run("plan", "reject", plan_id, "--notes", "too slow"))
    assert "too slow" in ok(run("plan", "view", plan_id))

    source.write_text(PLAN.replace("0.1", "0.2"))
    updated = ok(run("plan", "update", plan_id, str(source)))
    new_id = re.findall(r"plan-[0-9a-f]{12}", updated)[-1]
    assert new_id != plan_id
    assert new_id in ok(run("plan", "list", "--status", "pending"))
    ok(run("plan", "delete", new_id))
    assert new_id not in ok(run("plan", "list"))
    assert isinstance(run("plan", "approve", "plan-000000000000").exception, NotFound)
    assert "plan_decision" in ok(run("audit", "--kind", "plan_decision"))


def test_jobs_lists_the_job_log(run: Invoke, state_dir: Path) -> None:
    assert "no jobs yet" in ok(run("jobs"))
    services = open_node_services(state_dir / "node.sqlite3", None)
    job_id = services.jobs.start("exp-7", 2, "researcher-1", "dataset-1", "sha256:" + "a" * 64)
    services.jobs.finish(job_id, "timeout", message="deadline passed")
    services.close()
    listing = ok(run("jobs", "--limit", "5"))
    assert job_id in listing and "exp-7" in listing and "timeout" in listing
    assert "deadline passed" in listing


def test_config_file_sets_the_state_dir_and_data_root(tmp_path: Path, data_root: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        f'node_id = "hospital-b"\nstate_dir = "{tmp_path / "b-state"}"\ndata_root = "{data_root}"\n'
    )
    outside = tmp_path / "outside.csv"
    outside.write_text("a,b\n1,2\n")
    runner = CliRunner()
    base = ["node", "--config", str(config), "dataset", "add", "--type", "csv", "--name", "N"]
    inside = runner.invoke(cli, [*base, "--path", str(data_root / "table.csv"), "--tags", "x"])
    assert inside.exit_code == 0, inside.output
    refused = runner.invoke(cli, [*base, "--path", str(outside), "--tags", "y"])
    assert isinstance(refused.exception, DatasetError)
    assert "outside the data root" in str(refused.exception)
    assert (tmp_path / "b-state" / "node.sqlite3").exists()


def test_errors_reach_the_shell_as_messages_and_exit_codes(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "fedward.cli", "node", "--node-id", "n1"]
    base += ["--state-dir", str(tmp_path / "state")]
    missing = subprocess.run(
        [*base, "plan", "approve", "plan-000000000000"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == NotFound.exit_code
    assert "no training plan with id 'plan-000000000000'" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = subprocess.run(
        [
            *base,
            "dataset",
            "add",
            "--type",
            "csv",
            "--path",
            str(tmp_path / "none.csv"),
            "--name",
            "N",
            "--tags",
            "x",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == DatasetError.exit_code
    assert "does not exist" in bad.stderr


def test_jobs_also_lists_every_plan_decision(run: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "plan.py"
    source.write_text(PLAN)
    registered = run("plan", "register", str(source), "--class", "LinearPlan", "--name", "lin")
    plan_id = first_id(ok(registered), "plan")
    ok(run("plan", "approve", plan_id, "--notes", "reviewed by the ethics board", "--by", "alice"))
    ok(run("plan", "reject", plan_id, "--notes", "superseded", "--by", "bob"))
    listing = ok(run("jobs"))
    jobs, decisions = listing.split("plan decisions:")
    assert "no jobs yet" in jobs
    rows = [line for line in decisions.splitlines() if plan_id in line]
    assert len(rows) == 3  # registered, approved, rejected
    assert any("rejected: lin" in r and "superseded" in r and "bob" in r for r in rows)
    assert any("approved: lin" in r and "ethics board" in r and "alice" in r for r in rows)


def test_plan_register_takes_the_class_as_a_researcher_sends_it(
    run: Invoke, tmp_path: Path
) -> None:
    script = tmp_path / "experiment.py"
    script.write_text(
        '"""The researcher\'s whole script."""\nimport math\n\n' + PLAN
        + '\nif __name__ == "__main__":\n    print(math.pi)\n'
    )  # fmt: skip
    registered = ok(run("plan", "register", str(script), "--class", "LinearPlan", "--name", "l"))
    expected = plan_digest("import math\n\n\n" + PLAN.lstrip("\n"))
    assert expected in registered
    viewed = ok(run("plan", "view", first_id(registered, "plan")))
    assert "print(math.pi)" not in viewed and "import math" in viewed
    missing = run("plan", "register", str(script), "--class", "NoSuchPlan", "--name", "x")
    assert isinstance(missing.exception, PlanError)
    assert "classes found: LinearPlan" in str(missing.exception)


def test_a_csv_with_a_text_feature_column_is_added_with_a_warning(
    run: Invoke, data_root: Path
) -> None:
    table = data_root / "mixed.csv"
    table.write_text("age,sex,label\n61,F,0\n54,M,1\n47,F,0\n")
    result = run(
        "dataset", "add", "--type", "csv", "--path", str(table), "--name", "Mixed",
        "--tags", "mixed",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: column(s) sex hold text" in result.stderr
    assert "'label'" in result.stderr


def test_a_numeric_csv_is_added_without_a_warning(run: Invoke, data_root: Path) -> None:
    result = run(
        "dataset", "add", "--type", "csv", "--path", str(data_root / "table.csv"),
        "--name", "Table", "--tags", "numeric",
    )  # fmt: skip
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_status_shows_the_privacy_policy_and_each_researchers_spent_epsilon(
    run: Invoke, state_dir: Path
) -> None:
    assert "none configured ([privacy]" in ok(run("status"))
    ledger = PrivacyLedger.in_state_dir(state_dir)
    ledger.record("alice", "ds-1", "exp-1", 0, PrivacyEvent(1.0))
    ledger.record("alice", "ds-1", "exp-2", 0, PrivacyEvent(1.0))
    ledger.close()
    output = ok(run("status"))
    assert "alice on ds-1: epsilon 7.08 (2 round(s), 2 experiment(s))" in output
