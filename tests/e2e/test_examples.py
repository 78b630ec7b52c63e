"""The files in examples/ work as they are: the experiment runs against a real federation,
the node's and the researcher's configurations load and pass ``node start --check``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.config.loader import load_node_config, load_researcher_config
from fedward.demo.local_federation import LocalFederation

from .conftest import breast_cancer_federation
from .test_researcher_cli import researcher_toml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODES = ["node1", "node2"]


def _without_settings() -> dict[str, str]:
    """This process's environment without the variables that would override the files."""
    prefixes = ("MQTT_", "UPLOADS_", "FEDWARD_", "NODE_ID", "RESEARCHER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("examples")
    with breast_cancer_federation(workdir, NODES, ["breast-cancer", "examples"]) as fed:
        yield fed


def test_the_example_experiment_runs_as_written(
    federation: LocalFederation, tmp_path: Path
) -> None:
    # A copy, because the experiment writes its outputs next to its file.
    experiment = shutil.copy(EXAMPLES / "experiment.toml", tmp_path / "experiment.toml")
    config = researcher_toml(federation, tmp_path / "researcher.toml", tmp_path / "state")
    command = [sys.executable, "-m", "fedward.cli", "researcher", "run", str(experiment)]
    done = subprocess.run(
        [*command, "--config", str(config), "--rounds", "2", "--quiet"],
        capture_output=True,
        text=True,
        env=_without_settings(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "experiment breast-cancer-example: 2 round(s)" in done.stdout
    assert "ok=node1,node2" in done.stdout
    for output in ("final.safetensors", "metrics.png", "runs"):
        assert (tmp_path / output).exists(), output


def _with_enrolment_secrets(example: str, tmp_path: Path, peer_id: str) -> Path:
    """The example file, next to the enrolment folder its secret paths name."""
    config = Path(shutil.copy(EXAMPLES / example, tmp_path / example))
    (tmp_path / peer_id).mkdir()
    (tmp_path / peer_id / "broker_password").write_text("broker-password\n")
    (tmp_path / peer_id / "uploads_token").write_text("t" * 43 + "\n")
    return config


def test_the_example_node_configuration_loads_and_passes_the_start_check(
    tmp_path: Path,
) -> None:
    config_path = _with_enrolment_secrets("node.toml", tmp_path, "hospital-a")
    config = load_node_config(config_path, env={})
    assert config.node_id == "hospital-a" and config.approval_required
    assert config.broker.password is not None and config.uploads.token is not None
    check = ["node", "--config", str(config_path), "start", "--check"]
    done = subprocess.run(
        [sys.executable, "-m", "fedward.cli", *check],
        capture_output=True,
        text=True,
        env=_without_settings(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "node id:       hospital-a" in done.stdout
    assert "broker:        10.220.0.2:1883" in done.stdout


def test_the_example_researcher_configuration_loads(tmp_path: Path) -> None:
    config = load_researcher_config(
        _with_enrolment_secrets("researcher.toml", tmp_path, "alice"), env={}
    )
    assert config.researcher_id == "alice"
    assert config.uploads.base_url == "http://10.220.0.3:8000"
