"""Job isolation on a real node process: limits, deadlines, secrets, warm workers.

One node, ``guarded``, with small job limits (``[jobs] memory_mb = 1024``, ``cpu_s = 4``),
the probe plans of ``tests/node_job_plans/probes.py`` registered and approved by its
admin, and a researcher that sends raw train requests to see the exact error codes.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedward.cli import cli
from fedward.core.messages import ErrorReply, TrainReply
from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plan_source import plan_source
from fedward.node.services import open_node_services_for
from fedward.researcher import Experiment
from tests.node_job_plans import probes
from tests.node_job_plans.expectations import WORKER_ENV
from tests.security.attacker import RawResearcher

NODE = "guarded"
TAGS = ["isolation"]
PROBE_SOURCES = {
    cls.__name__: plan_source(cls)
    for cls in (
        probes.PidPlan,
        probes.MemoryHogPlan,
        probes.SpinPlan,
        probes.SleepPlan,
        probes.SnoopPlan,
    )
}
CANARY = "canary-vpn-key-in-the-node-environment"


@pytest.fixture(scope="module")
def etc_wireguard_key() -> Iterator[Path]:
    """A key file in /etc/wireguard, where a node's VPN configuration lives; removed after."""
    folder = Path("/etc/wireguard")
    created = not folder.exists()
    folder.mkdir(mode=0o700, exist_ok=True)
    key = folder / f"fedward-test-{secrets.token_hex(6)}.key"
    key.write_text("wireguard-private-key-for-the-test\n")
    key.chmod(0o600)
    yield key
    key.unlink(missing_ok=True)
    if created:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("isolation")
    fed = LocalFederation(
        workdir,
        node_ids=[NODE],
        node_toml={NODE: "[jobs]\nmemory_mb = 1024\ncpu_s = 4\n"},
    )
    table = breast_cancer_split(workdir / "data", 1).node_files[0]
    fed.start()
    try:
        fed.add_dataset(NODE, data_type="csv", path=table, name="bc", tags=TAGS)
        services = open_node_services_for(fed.nodes[NODE].config)
        for class_name, source in PROBE_SOURCES.items():
            services.plans.register(source, class_name, class_name, approve=True)
        services.close()
        vpn_key = workdir / "vpn" / NODE / "private.key"  # where ``fedward vpn`` puts it
        vpn_key.parent.mkdir(parents=True, mode=0o700)
        vpn_key.write_text("node-vpn-private-key\n")
        vpn_key.chmod(0o600)
        fed.start_node(NODE, env={"VPN_PRIVATE_KEY": CANARY})
        fed.wait_online([NODE])
        yield fed
    finally:
        fed.stop()


@pytest.fixture(scope="module")
def researcher(guarded: LocalFederation) -> RawResearcher:
    return RawResearcher(guarded, NODE, TAGS)


def job_log_line(fed: LocalFederation, experiment_id: str) -> str:
    config = str(fed.nodes[NODE].config_file)
    result = CliRunner().invoke(cli, ["node", "--config", config, "jobs", "--wide"])
    assert result.exit_code == 0, result.output
    (line,) = [row for row in result.output.splitlines() if experiment_id in row]
    return line


def test_plan_allocating_past_the_memory_limit_is_killed_and_reported(
    guarded: LocalFederation, researcher: RawResearcher
) -> None:
    request, replies = researcher.send(probes.MemoryHogPlan, {"megabytes": 4096})
    reply = replies.get(timeout=90)
    assert isinstance(reply, ErrorReply), reply
    assert reply.code == "job_memory_limit"
    assert "memory_mb" in reply.message and "/" not in reply.message  # no node paths
    assert researcher.node_answers_ping()
    assert " killed " in job_log_line(guarded, request.experiment_id)


def test_endless_loop_is_killed_at_its_cpu_limit_while_the_node_answers_ping(
    guarded: LocalFederation, researcher: RawResearcher
) -> None:
    request, replies = researcher.send(probes.SpinPlan)
    researcher.wait_started(request)
    assert researcher.node_answers_ping()  # while the job spins
    reply = replies.get(timeout=90)
    assert isinstance(reply, ErrorReply), reply
    assert reply.code == "job_cpu_limit"
    assert "4 s of CPU time" in reply.message
    assert researcher.node_answers_ping()
    assert " killed " in job_log_line(guarded, request.experiment_id)


def test_plan_that_never_returns_is_killed_at_its_deadline(
    guarded: LocalFederation, researcher: RawResearcher
) -> None:
    request, replies = researcher.send(probes.SleepPlan, deadline_s=6.0)
    researcher.wait_started(request)
    assert researcher.node_answers_ping()  # while the job waits
    reply = replies.get(timeout=60)
    assert isinstance(reply, ErrorReply), reply  # before the researcher's deadline passed
    assert reply.code == "job_timeout"
    assert researcher.node_answers_ping()
    assert " timeout " in job_log_line(guarded, request.experiment_id)


def test_training_plan_cannot_read_the_nodes_credentials(
    guarded: LocalFederation, researcher: RawResearcher, etc_wireguard_key: Path
) -> None:
    node = guarded.nodes[NODE]
    assert node.process is not None and guarded.broker is not None
    secrets_dir = guarded.secrets_dir
    paths = {
        "broker_password": secrets_dir / f"{NODE}.broker-password",
        "upload_token": secrets_dir / f"{NODE}.upload-token",
        "vpn_key": guarded.workdir / "vpn" / NODE / "private.key",
        "etc_wireguard": etc_wireguard_key.parent,
        "node_database": node.config.database_path,
        "node_config": node.config_file,
        "daemon_environment": Path(f"/proc/{node.process.pid}/environ"),
        "dataset": guarded.workdir / "data" / "node1" / "breast_cancer.csv",
    }
    for label, path in paths.items():
        assert path.exists(), label  # each is there to be read, for the node itself
    connect = [guarded.broker.host, guarded.broker.port]
    _, replies = researcher.send(
        probes.SnoopPlan, {"paths": {k: str(v) for k, v in paths.items()}, "connect": connect}
    )
    reply = replies.get(timeout=90)
    assert isinstance(reply, TrainReply), reply
    metrics = reply.metrics
    assert metrics["read:dataset"] == 1.0  # the probe can read: what it may
    assert [k for k, v in metrics.items() if k.startswith("read:") and v] == ["read:dataset"]
    assert metrics["tcp_connect"] == 0.0  # not even the broker
    assert metrics["signal_parent"] == 0.0
    environment = {k.removeprefix("env:") for k in metrics if k.startswith("env:")}
    assert environment <= WORKER_ENV and "VPN_PRIVATE_KEY" not in environment
    if os.geteuid() == 0:
        assert metrics["capabilities"] == 1 << 2  # CAP_DAC_READ_SEARCH only


def test_warm_worker_serves_every_round_of_an_experiment(
    guarded: LocalFederation, researcher: RawResearcher
) -> None:
    experiment = Experiment(
        tags=TAGS,
        training_plan=probes.PidPlan,
        rounds=3,
        round_timeout_s=60,
        federation=researcher.federation,
        checkpoints=False,
        progress=False,
    )
    history = experiment.run()
    workers = [record.nodes[NODE].metrics["worker"] for record in history]
    assert len(workers) == 3 and len(set(workers)) == 1
