"""Plan approval on real node processes, over Mosquitto and the upload server.

Two nodes: ``strict`` (approval on, default plans on: the defaults) and ``open``
(``ENABLE_TRAINING_PLAN_APPROVAL=false``, ``ALLOW_DEFAULT_TRAINING_PLANS=false``). The
node administrator acts through ``fedward node ...``; the researcher through
``Experiment``. Each test uses its own plan class (``tests/node_job_plans/reviewed*.py``),
so the tests do not depend on their order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.cli import cli
from fedward.demo.data import SplitTable, breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.errors import FederationError
from fedward.learning.plan import TrainingPlan
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.node.default_plans import SHIPPED_PLANS
from fedward.researcher import Experiment
from tests.node_job_plans import reviewed, reviewed_changed, reviewed_reformatted

TAGS = ["governance", "breast-cancer"]
PLANS_DIR = Path(reviewed.__file__).parent


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("governance")
    fed = LocalFederation(workdir, node_ids=["strict", "open"])
    fed.split = breast_cancer_split(workdir / "data", 2)  # type: ignore[attr-defined]
    fed.start()
    try:
        for node_id, path in zip(fed.node_ids, fed.split.node_files, strict=True):  # type: ignore[attr-defined]
            fed.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=TAGS)
        fed.start_node("strict")
        fed.start_node(
            "open",
            env={"ENABLE_TRAINING_PLAN_APPROVAL": "false", "ALLOW_DEFAULT_TRAINING_PLANS": "false"},
        )
        fed.wait_online(["strict", "open"])
        yield fed
    finally:
        fed.stop()


def experiment(fed: LocalFederation, plan: type[TrainingPlan], node_id: str) -> Experiment:
    split: SplitTable = fed.split  # type: ignore[attr-defined]
    return Experiment(
        tags=TAGS,
        training_plan=plan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args={"epochs": 1, "batch_size": 32},
        nodes=[node_id],
        round_timeout_s=60,
        federation=fed.researcher(),
        checkpoints=False,
        progress=False,
    )


def admin(fed: LocalFederation, node_id: str, *args: str) -> str:
    """``fedward node --config <node's config> ARGS``, as the node's administrator types it."""
    config = str(fed.nodes[node_id].config_file)
    result = CliRunner().invoke(cli, ["node", "--config", config, *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def plan_id_of(fed: LocalFederation, node_id: str, plan_digest: str) -> str:
    for line in admin(fed, node_id, "plan", "list", "--status", "pending").splitlines():
        if line.startswith("plan-") and plan_digest[:20] in line:
            return line.split()[0]
    raise AssertionError(f"no pending plan with digest {plan_digest}")


def test_requested_plan_is_pending_until_the_admin_approves_it_then_trains(
    governed: LocalFederation,
) -> None:
    exp = experiment(governed, reviewed.RequestedPlan, "strict")
    assert exp.plan_status() == {"strict": "unknown"}
    with pytest.raises(FederationError, match="training plan is unknown on this node"):
        exp.run_once()

    assert exp.request_approval("logistic regression, 1 epoch") == {"strict": "pending"}
    with pytest.raises(FederationError, match="training plan is pending on this node"):
        exp.run_once()

    plan_id = plan_id_of(governed, "strict", exp.plan_digest)
    viewed = admin(governed, "strict", "plan", "view", plan_id)
    assert "logistic regression, 1 epoch" in viewed and "researcher1" in viewed
    assert "class RequestedPlan" in viewed  # the admin reviews the exact source
    assert f"plan {plan_id} approved" in admin(governed, "strict", "plan", "approve", plan_id)

    assert exp.plan_status() == {"strict": "approved"}
    record = exp.run_once()
    assert record.succeeded == ["strict"]
    assert record.nodes["strict"].sample_count > 0

    jobs = admin(governed, "strict", "jobs", "--wide")
    decisions = jobs.split("plan decisions:")[1]
    assert plan_id in decisions and "approved: RequestedPlan" in decisions
    job_lines = [
        line for line in jobs.split("plan decisions:")[0].splitlines() if exp.experiment_id in line
    ]
    assert len(job_lines) == 1
    assert "researcher1" in job_lines[0] and exp.plan_digest in job_lines[0]
    assert "succeeded" in job_lines[0]


def test_one_changed_constant_is_refused_and_a_reformatted_copy_is_accepted(
    governed: LocalFederation,
) -> None:
    registered = admin(
        governed, "strict", "plan", "register", str(PLANS_DIR / "reviewed.py"),
        "--class", "ReviewedPlan", "--name", "reviewed", "--approve",
    )  # fmt: skip
    original = experiment(governed, reviewed.ReviewedPlan, "strict")
    assert original.plan_digest in registered  # the file registers what researchers send

    reformatted = experiment(governed, reviewed_reformatted.ReviewedPlan, "strict")
    assert reformatted.plan_digest == original.plan_digest
    assert reformatted.run_once().succeeded == ["strict"]

    changed = experiment(governed, reviewed_changed.ReviewedPlan, "strict")
    assert changed.plan_digest != original.plan_digest
    with pytest.raises(FederationError, match="training plan is unknown on this node"):
        changed.run_once()


def test_rejected_plan_is_refused_with_its_notes(governed: LocalFederation) -> None:
    exp = experiment(governed, reviewed.RejectedPlan, "strict")
    assert exp.request_approval("hinge loss, large steps") == {"strict": "pending"}
    plan_id = plan_id_of(governed, "strict", exp.plan_digest)
    notes = "step size 0.5 diverges on our data"
    admin(governed, "strict", "plan", "reject", plan_id, "--notes", notes)

    assert exp.plan_status() == {"strict": f"rejected ({notes})"}
    with pytest.raises(FederationError, match=f"training plan is rejected on this node: {notes}"):
        exp.run_once()
    decisions = admin(governed, "strict", "jobs", "--wide").split("plan decisions:")[1]
    assert "rejected: RejectedPlan" in decisions and notes in decisions
    refusals = admin(governed, "strict", "audit", "--kind", "train_refused")
    assert "researcher1" in refusals and "is rejected" in refusals


def test_with_approval_off_the_node_warns_at_start_and_runs_any_plan(
    governed: LocalFederation,
) -> None:
    log_file = governed.nodes["open"].log_file
    assert log_file is not None
    assert "training-plan approval is DISABLED" in log_file.read_text()
    exp = experiment(governed, reviewed_changed.ReviewedPlan, "open")
    assert exp.plan_status() == {"open": "unknown"}
    assert exp.run_once().succeeded == ["open"]
    strict_log = governed.nodes["strict"].log_file
    assert strict_log is not None and "approval is DISABLED" not in strict_log.read_text()


def test_default_plans_are_approved_at_start_unless_disallowed(
    governed: LocalFederation,
) -> None:
    approved = admin(governed, "strict", "plan", "list", "--status", "approved")
    for _, class_name in SHIPPED_PLANS:
        (line,) = [row for row in approved.splitlines() if f" {class_name} " in row]
        assert " default " in line
    assert experiment(governed, SGDClassifierPlan, "strict").run_once().succeeded == ["strict"]
    assert "SGDClassifierPlan" not in admin(governed, "open", "plan", "list")
