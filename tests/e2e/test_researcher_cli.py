"""The researcher's command line against a real federation, and resuming after a crash.

Resume: a researcher process runs an experiment and is killed (SIGKILL, no cleanup) right
after round 2 of 5; ``fedward researcher run --resume`` carries on from the checkpoint.
The final parameters must be bit for bit those of an uninterrupted run with the same
seed: same node draws (the selection RNG is in the checkpoint), same server-optimiser
moments, same fold order, and nodes whose training replays exactly from its inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.demo.local_federation import LocalFederation
from fedward.protocol.params_wire import load_params
from fedward.researcher.checkpoint import round_dirs

from .conftest import breast_cancer_federation

TAGS = ["breast-cancer", "cli"]
NODES = ["node1", "node2", "node3"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("cli")
    with breast_cancer_federation(workdir, NODES, TAGS) as fed:
        yield fed


def researcher_toml(fed: LocalFederation, path: Path, state_dir: Path) -> Path:
    config = fed.researcher_config()
    secrets = fed.secrets_dir
    path.write_text(
        textwrap.dedent(
            f"""\
            researcher_id = "{config.researcher_id}"
            state_dir = "{state_dir}"
            [broker]
            host = "{config.broker.host}"
            port = {config.broker.port}
            username = "{config.researcher_id}"
            password_file = "{secrets / (config.researcher_id + ".broker-password")}"
            [uploads]
            url = "{config.uploads.base_url}"
            token_file = "{secrets / (config.researcher_id + ".upload-token")}"
            """
        )
    )
    return path


def experiment_toml(path: Path, experiment_id: str) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            plan = "fedward.learning.plans.sklearn_classifier:SGDClassifierPlan"
            tags = {json.dumps(TAGS)}
            rounds = 5
            seed = 3
            aggregator = "fedadam"
            round_timeout_s = 60
            experiment_id = "{experiment_id}"
            save = "{experiment_id}.safetensors"
            plot = "{experiment_id}.png"

            [model_args]
            n_features = 30
            classes = [0, 1]

            [training_args]
            epochs = 3
            batch_size = 16

            [aggregator_args]
            lr = 0.05

            [selection]
            fraction = 0.6
            """
        )
    )
    return path


def fedward(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "UPLOADS_", "FEDWARD_"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "fedward.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"fedward {args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


CRASHING_RESEARCHER = """\
import os, signal, sys
from pathlib import Path
from fedward.researcher import Experiment
from fedward.researcher.connect import connect
from fedward.researcher.experiment_file import read_experiment_file

described = read_experiment_file(Path(sys.argv[1]))

def crash_after_round_two(record):
    if record.round_index == 1:
        os.kill(os.getpid(), signal.SIGKILL)

experiment = Experiment(
    training_plan=described.plan,
    federation=connect(config_file=Path(sys.argv[2])),
    on_round=crash_after_round_two,
    **described.settings,
)
experiment.run()
"""


def test_nodes_lists_who_is_online_and_their_datasets(
    federation: LocalFederation, tmp_path: Path
) -> None:
    config = researcher_toml(federation, tmp_path / "researcher.toml", tmp_path / "state")
    table = fedward("researcher", "nodes", "--config", config).stdout
    for node_id in NODES:
        assert f"{node_id}  online" in table
    assert "tags=breast-cancer,cli" in table
    assert str(federation.workdir) not in table  # never a path
    listing = json.loads(fedward("researcher", "nodes", "--config", config, "--json").stdout)
    assert sorted(listing) == NODES
    assert listing["node1"]["datasets"][0]["tags"] == TAGS


@pytest.mark.timeout(300)
def test_a_researcher_killed_after_round_two_resumes_to_bitwise_identical_parameters(
    federation: LocalFederation, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    config = researcher_toml(federation, tmp_path / "researcher.toml", state)

    straight = fedward(
        "researcher", "run", experiment_toml(tmp_path / "a.toml", "straight"), "--config", config
    )
    assert "experiment straight: 5 round(s)" in straight.stdout

    crashing = tmp_path / "crashing_researcher.py"
    crashing.write_text(CRASHING_RESEARCHER)
    interrupted = experiment_toml(tmp_path / "b.toml", "interrupted")
    killed = subprocess.run(
        [sys.executable, str(crashing), str(interrupted), str(config)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -9, killed.stderr
    assert [p.name for p in round_dirs(state / "experiments" / "interrupted")] == [
        "round-0001",
        "round-0002",
    ]

    resumed = fedward("researcher", "run", interrupted, "--config", config, "--resume")
    assert "resuming interrupted after round 2" in resumed.stdout
    assert "experiment interrupted: 5 round(s)" in resumed.stdout

    straight_rounds = [s for s in straight.stdout.splitlines() if s.startswith("  round")]
    resumed_rounds = [s for s in resumed.stdout.splitlines() if s.startswith("  round")]
    assert straight_rounds == resumed_rounds  # the same nodes and metrics, round by round
    print("\n".join(resumed_rounds))
    expected = load_params(tmp_path / "straight.safetensors")
    final = load_params(tmp_path / "interrupted.safetensors")
    assert sorted(final) == sorted(expected)
    for name in expected:
        assert final[name].tobytes() == expected[name].tobytes(), name
    assert (tmp_path / "interrupted.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
