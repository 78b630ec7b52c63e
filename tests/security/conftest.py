"""One real node under attack, in each isolation configuration CI must hold.

``auto`` is the strongest this host offers (bubblewrap namespaces, seccomp, Landlock,
cgroups as root); ``basic`` is the fallback a node gets where namespaces cannot be made
(a container without user namespaces): seccomp, Landlock, cgroups, limits. Every attack
module runs against both.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedward.core.messages import ErrorReply, Reply, TrainReply
from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source
from fedward.node.services import open_node_services_for
from tests.security import attack_plans
from tests.security.attacker import RawResearcher

NODE = "target"
TAGS = ["under-attack"]
SANDBOXES = ["auto", "basic"]
APPROVED = (
    attack_plans.EscapePlan,
    attack_plans.ForgeryPlan,
    attack_plans.ResultPlan,
    attack_plans.ProcessPlan,
)
JOBS_TOML = """
[jobs]
sandbox = "{sandbox}"
memory_mb = 1024
cpu_s = 8
disk_mb = 256
pids_max = 128
"""


@dataclass
class AttackedNode:
    sandbox: str
    federation: LocalFederation
    researcher: RawResearcher

    @property
    def pid(self) -> int:
        process = self.federation.nodes[NODE].process
        assert process is not None
        return process.pid

    @property
    def state_dir(self) -> Path:
        return self.federation.nodes[NODE].config.state_dir

    @property
    def dataset_file(self) -> Path:
        return self.federation.workdir / "data" / "node1" / "breast_cancer.csv"

    def send(
        self, plan: type[TrainingPlan], model_args: dict[str, Any] | None = None, **fields: Any
    ) -> tuple[Any, queue.Queue[Reply | None]]:
        return self.researcher.send(plan, model_args, **fields)

    def attack(
        self, plan: type[TrainingPlan], model_args: dict[str, Any], **fields: Any
    ) -> Reply | None:
        """Run one attack to its reply."""
        _, replies = self.send(plan, model_args, **fields)
        return replies.get(timeout=fields.get("deadline_s", 60.0) + 30)

    def attack_source(self, source: bytes, plan_class: str, model_args: dict[str, Any]) -> Any:
        """Send exact plan bytes; the node must refuse them (the reply is returned)."""
        _, replies = self.researcher.send_source(source, plan_class, model_args)
        return self.refused(replies.get(timeout=90))

    def escaped(self, attack: str, target: Any = None) -> float:
        """What ``EscapePlan`` reports for ``attack`` (1.0 or a count: it got through)."""
        reply = self.attack(attack_plans.EscapePlan, {"attack": attack, "target": target})
        assert isinstance(reply, TrainReply), reply
        return reply.metrics["escaped"]

    def refused(self, reply: Reply | None, code: str | None = None) -> ErrorReply:
        """``reply`` is an error (with ``code``), and the node still answers."""
        assert isinstance(reply, ErrorReply), reply
        if code is not None:
            assert reply.code == code, reply
        assert self.researcher.node_answers_ping()
        return reply


@pytest.fixture(scope="module", params=SANDBOXES)
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AttackedNode]:
    sandbox = request.param
    workdir = tmp_path_factory.mktemp(f"attacked-{sandbox}")
    fed = LocalFederation(
        workdir,
        node_ids=[NODE],
        node_toml={NODE: JOBS_TOML.format(sandbox=sandbox)},
        max_blob_mb=512,
    )
    table = breast_cancer_split(workdir / "data", 1).node_files[0]
    fed.start()
    try:
        fed.add_dataset(NODE, data_type="csv", path=table, name="bc", tags=TAGS)
        services = open_node_services_for(fed.nodes[NODE].config)
        for plan in APPROVED:
            services.plans.register(plan_source(plan), plan.__name__, plan.__name__, approve=True)
        services.close()
        fed.start_node(NODE)
        fed.wait_online([NODE])
        if os.environ.get("CI") and sandbox == "auto" and os.geteuid() == 0:
            # CI must really run the strongest configuration, not fall back silently.
            log = (workdir / "nodes" / NODE / "node.log").read_text()
            assert "namespaces   on" in log, "bubblewrap is not active in CI: see .ci/run"
        yield AttackedNode(sandbox, fed, RawResearcher(fed, NODE, TAGS))
    finally:
        fed.stop()
