"""A researcher as its own process, so that it can be killed (SIGKILL) and resumed.

    python -m tests.chaos.researcher_process CONFIG STATE_DIR ROUNDS OUT.npz

Runs the chaos experiment (``harness.experiment``'s plan, data and seed) with its
checkpoints under STATE_DIR; when STATE_DIR already holds one, it resumes from the
latest with ``Experiment.load_checkpoint`` (the public resume API) instead. The final
parameters go to OUT.npz.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from fedward.demo.local_federation import LocalFederation

EXPERIMENT_ID = "exp-chaos-researcher"


def write_config(fed: LocalFederation, path: Path) -> Path:
    """The researcher's TOML config for ``fed`` (secrets stay in their files)."""
    broker_host, broker_port = fed.client_address("broker")
    secrets = fed.secrets_dir
    path.write_text(
        "\n".join(
            [
                f'researcher_id = "{fed.researcher_id}"',
                "[broker]",
                f'host = "{broker_host}"',
                f"port = {broker_port}",
                f'username = "{fed.researcher_id}"',
                f'password_file = "{secrets / (fed.researcher_id + ".broker-password")}"',
                "[uploads]",
                f'url = "{fed.client_uploads_url}"',
                f'token_file = "{secrets / (fed.researcher_id + ".upload-token")}"',
                "",
            ]
        )
    )
    path.with_suffix(".features").write_text(str(len(fed.split.feature_names)))  # type: ignore[attr-defined]
    return path


def _command(config: Path, state_dir: Path, rounds: int, out: Path) -> list[str]:
    return [sys.executable, "-m", __name__, str(config), str(state_dir), str(rounds), str(out)]


def start(config: Path, state_dir: Path, rounds: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _command(config, state_dir, rounds, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run(config: Path, state_dir: Path, rounds: int, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(config, state_dir, rounds, out),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def main(config_path: str, state_dir: str, rounds: str, out: str) -> int:
    from fedward.config.loader import load_researcher_config
    from fedward.demo.breast_cancer import demo_training_args
    from fedward.errors import NotFound
    from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
    from fedward.researcher import Experiment
    from fedward.researcher.connect import connect
    from tests.chaos.harness import SEED, TAGS

    config = load_researcher_config(Path(config_path), env={})
    federation = connect(config)
    try:
        try:
            experiment = Experiment.load_checkpoint(
                "latest",
                federation=federation,
                state_dir=state_dir,
                experiment_id=EXPERIMENT_ID,
                training_plan=SGDClassifierPlan,
                progress=False,
            )
        except NotFound:
            features = int(Path(config_path).with_suffix(".features").read_text())
            experiment = Experiment(
                tags=TAGS,
                training_plan=SGDClassifierPlan,
                model_args={"n_features": features, "classes": [0, 1]},
                training_args=demo_training_args(),
                rounds=int(rounds),
                min_replies=3,
                round_timeout_s=60,
                federation=federation,
                experiment_id=EXPERIMENT_ID,
                seed=SEED,
                state_dir=state_dir,
                progress=False,
            )
        experiment.run()
        np.savez(out, **experiment.aggregated_params())
    finally:
        federation.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
