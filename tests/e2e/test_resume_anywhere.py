"""A researcher killed anywhere in a round resumes to the parameters of an uninterrupted run.

Two real nodes (processes, Mosquitto, upload server). The researcher is a separate process
(``crashing_researcher``) that SIGKILLs itself at one point of round 2 of 3, while its
nodes are mid-job (``slow_plan`` keeps them busy there); the test then resumes the
experiment from its checkpoint and journal, as a researcher would after a crash, at once.
Every resumed run must end bit for bit where the uninterrupted one did, with each node
having run each round's job exactly once (a repeated request re-attaches to its job or
gets its finished outcome). A round that cannot be finished that way must fail loudly.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.demo.local_federation import LocalFederation
from fedward.errors import RoundNotResumable
from fedward.node.services import open_node_services_for
from fedward.researcher import Experiment, FedAvg
from fedward.researcher.checkpoint import round_dirs
from tests.e2e.crashing_researcher import KILL_POINTS, SETTINGS
from tests.e2e.slow_plan import SlowSGDPlan

from .conftest import breast_cancer_federation
from .test_researcher_cli import researcher_toml

NODES = ["node1", "node2"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("resume-anywhere")
    # The slow plan is a test's own: nodes that require approval would refuse it.
    with breast_cancer_federation(workdir, NODES, SETTINGS["tags"], approval_required=False) as fed:
        yield fed


@pytest.fixture(scope="module")
def uninterrupted(federation: LocalFederation, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    state = tmp_path_factory.mktemp("straight")
    experiment = Experiment(
        training_plan=SlowSGDPlan,
        federation=federation.researcher(),
        experiment_id="straight",
        state_dir=state,
        **SETTINGS,
    )
    history = experiment.run()
    assert [r.succeeded for r in history] == [NODES] * 3
    return parameters_bytes(experiment)


def parameters_bytes(experiment: Experiment) -> bytes:
    params = experiment.aggregated_params()
    return b"".join(name.encode() + params[name].tobytes() for name in sorted(params))


def crash(fed: LocalFederation, tmp_path: Path, experiment_id: str, point: str) -> Path:
    """Run the researcher until it kills itself at ``point``; its state folder."""
    state = tmp_path / "state"
    config = researcher_toml(fed, tmp_path / "researcher.toml", state)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crashing_researcher", str(config), experiment_id, point],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -9, killed.stderr
    return state


def resume(fed: LocalFederation, state: Path, experiment_id: str) -> Experiment:
    return Experiment.load_checkpoint(
        "latest",
        federation=fed.researcher(),
        state_dir=state,
        experiment_id=experiment_id,
        training_plan=SlowSGDPlan,
        aggregator=FedAvg(),
        progress=False,
    )


def jobs_per_round(fed: LocalFederation, experiment_id: str) -> dict[str, list[int]]:
    """The rounds each node ran a job for (one entry per job), from its own job log."""
    found: dict[str, list[int]] = {}
    for node_id in NODES:
        services = open_node_services_for(fed.nodes[node_id].config)
        try:
            jobs = [j for j in services.jobs.list(1000) if j.experiment_id == experiment_id]
        finally:
            services.close()
        found[node_id] = sorted(j.round_index for j in jobs)
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_researcher_killed_anywhere_in_a_round_resumes_bit_for_bit(
    federation: LocalFederation, uninterrupted: bytes, tmp_path: Path, point: str
) -> None:
    experiment_id = f"killed-{point.replace('_', '-')}"
    state = crash(federation, tmp_path, experiment_id, point)

    resumed = resume(federation, state, experiment_id)
    history = resumed.run()

    assert [r.succeeded for r in history] == [NODES] * 3
    assert parameters_bytes(resumed) == uninterrupted
    # No job ran twice: the resumed round's requests found the jobs the first ones started.
    assert jobs_per_round(federation, experiment_id) == {n: [0, 1, 2] for n in NODES}
    assert [p.name for p in round_dirs(state / "experiments" / experiment_id)] == [
        "round-0001",
        "round-0002",
        "round-0003",
    ]
    assert not list((state / "experiments" / experiment_id).glob("*.journal"))


@pytest.mark.timeout(300)
def test_a_round_whose_busy_node_is_lost_fails_loudly_then_resumes_once_it_is_back(
    federation: LocalFederation, uninterrupted: bytes, tmp_path: Path
) -> None:
    experiment_id = "killed-node-lost"
    state = crash(federation, tmp_path, experiment_id, "between_replies")
    federation.stop_node("node2", kill=True)  # its round-2 job dies with it
    researcher = federation.researcher()
    deadline = time.monotonic() + 30
    while "node2" not in researcher.offline_nodes() and time.monotonic() < deadline:
        time.sleep(0.05)  # the broker publishes its will: the researcher knows at once
    try:
        resumed = resume(federation, state, experiment_id)
        with pytest.raises(RoundNotResumable, match="node2") as refused:
            resumed.run_once()
        print(refused.value)
        # Not a round with node1 only: nothing was aggregated or saved.
        assert resumed.round_index == 1
        assert len(round_dirs(state / "experiments" / experiment_id)) == 1
    finally:
        federation.start_node("node2")
        federation.wait_online(["node2"])

    resumed = resume(federation, state, experiment_id)
    resumed.run()
    # The restarted node2 ran round 2's job again, from the same inputs: the same update.
    assert parameters_bytes(resumed) == uninterrupted
