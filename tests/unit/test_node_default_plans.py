"""Default plans: read from the installed files exactly as a researcher would send them,
approved at start when ALLOW_DEFAULT_TRAINING_PLANS is on, retired when it is off."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from fedward.config.model import NodeConfig
from fedward.core.plan_digest import plan_digest
from fedward.errors import PlanError
from fedward.learning.plan_source import plan_source
from fedward.node.default_plans import SHIPPED_PLANS, default_plans
from fedward.node.jobs.isolation import WorkerIsolation
from fedward.node.plan_files import missing_packages, plan_source_from_text
from fedward.node.services import open_node_services_for
from fedward.node.wiring import build_node_daemon
from fedward.transport.channel import Channel, Will
from fedward.transport.memory import MemoryBlobStore, MemoryBroker


def test_every_shipped_plan_is_offered_as_the_researcher_sends_it() -> None:
    offered = {name: source for name, source, _ in default_plans()}
    assert set(offered) == {class_name for _, class_name in SHIPPED_PLANS}
    for module_name, class_name in SHIPPED_PLANS:
        cls = getattr(importlib.import_module(module_name), class_name)
        assert offered[class_name] == plan_source(cls), class_name


def test_reading_the_default_plans_imports_neither_torch_nor_sklearn() -> None:
    probe = (
        "import sys; from fedward.node.default_plans import default_plans; "
        "assert len(default_plans()) == 5; "
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_a_plan_file_gives_the_researchers_text_whatever_else_it_holds() -> None:
    text = '''"""A module docstring, which plan_source does not send."""

import numpy as np
from fedward.learning.plan import TrainingPlan

RATE = 0.1


class Other:
    pass


def helper() -> None:
    pass


class MyPlan(TrainingPlan):
    """Mine."""

    step = 2  # a comment


if __name__ == "__main__":
    print("a script at the bottom")
'''
    source = plan_source_from_text(text, "MyPlan")
    assert source == (
        "import numpy as np\nfrom fedward.learning.plan import TrainingPlan\n\n\n"
        'class MyPlan(TrainingPlan):\n    """Mine."""\n\n    step = 2  # a comment\n'
    )
    assert plan_source_from_text(source, "MyPlan") == source  # reading it back changes nothing


def test_a_plan_file_without_the_class_or_with_a_relative_import_is_refused() -> None:
    with pytest.raises(PlanError, match="classes found: A, B"):
        plan_source_from_text("class A: pass\nclass B: pass\n", "MyPlan")
    with pytest.raises(PlanError, match="relative import"):
        plan_source_from_text("from . import x\nclass MyPlan: pass\n", "MyPlan")
    with pytest.raises(PlanError, match="not valid Python"):
        plan_source_from_text("class MyPlan(:\n", "MyPlan")


def test_a_plan_whose_packages_are_missing_is_not_offered() -> None:
    source = "import numpy\nimport no_such_package_here.sub\nclass P: pass\n"
    assert missing_packages(source) == ["no_such_package_here"]


def _registry_after_start(tmp_path: Path, *, allow: bool) -> dict[str, tuple[str, str, str]]:
    config = NodeConfig(node_id="n1", state_dir=tmp_path, allow_default_plans=allow)
    broker = MemoryBroker()

    def channel_factory(client_id: str, will: Will) -> Channel:
        return broker.connect(client_id, will)

    daemon = build_node_daemon(
        config,
        channel_factory=channel_factory,
        blobs=MemoryBlobStore().as_peer("n1"),
        isolation=WorkerIsolation.none(),
    )
    daemon.stop()
    services = open_node_services_for(config)
    try:
        return {r.name: (r.kind, r.status, r.digest) for r in services.plans.list()}
    finally:
        services.close()


def test_default_plans_are_approved_at_start_and_retired_when_disallowed(tmp_path: Path) -> None:
    registry = _registry_after_start(tmp_path, allow=True)
    for module_name, class_name in SHIPPED_PLANS:
        cls = getattr(importlib.import_module(module_name), class_name)
        assert registry[class_name] == ("default", "approved", plan_digest(plan_source(cls)))

    registry = _registry_after_start(tmp_path, allow=False)
    assert {status for _, status, _ in registry.values()} == {"rejected"}

    registry = _registry_after_start(tmp_path, allow=True)  # allowed again: approved again
    assert {status for _, status, _ in registry.values()} == {"approved"}


def test_a_fresh_node_with_default_plans_disallowed_has_none(tmp_path: Path) -> None:
    assert _registry_after_start(tmp_path, allow=False) == {}


def test_approval_off_warns_at_every_start(tmp_path: Path) -> None:
    warnings: list[str] = []
    for approval in (False, True, False):
        config = NodeConfig(node_id="n1", state_dir=tmp_path, approval_required=approval)
        daemon = build_node_daemon(
            config,
            channel_factory=lambda client_id, will: MemoryBroker().connect(client_id, will),
            blobs=MemoryBlobStore().as_peer("n1"),
            isolation=WorkerIsolation.none(),
            warn=warnings.append,
        )
        daemon.stop()
    assert len(warnings) == 2
    assert all("approval is DISABLED" in w for w in warnings)
