"""A compose project driven through the real `docker compose` (tests/compose only).

The deployment under test is the one operators run: deploy/docker's compose files, the
images built from this tree, host folders under a temporary RUN_MOUNTS.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
MAIN = DOCKER / "docker-compose.yml"

# A real 2-round experiment on the nodes offering the "digits" dataset; prints
# RESULT [[round, node], ...].
EXPERIMENT = """
import json
from fedward.learning.plans.torch_cnn import TorchCNNPlan
from fedward.researcher import Experiment, FedAvg
experiment = Experiment(
    tags=["digits"], training_plan=TorchCNNPlan, model_args={{"n_classes": 10}},
    training_args={{"batch_size": 32, "epochs": 1, "optimizer_args": {{"lr": 3e-3}}}},
    rounds=2, aggregator=FedAvg(), round_timeout_s=300, experiment_id="{experiment_id}", seed=0,
)
experiment.run()
frame = experiment.metrics_frame()
pairs = {{(int(r), str(n)) for r, n in zip(frame["round"], frame["node_id"])}}
print("RESULT " + json.dumps(sorted(pairs)))
"""

SITE = DOCKER / "docker-compose.node.yml"

# A Python script in the researcher container as docs/docker.md says: a plain `python`,
# which is /opt/fedward/bin/python there (the container's settings, the account's uid).
RESEARCHER_PYTHON = ("python", "-")


def run(
    args: list[str], *, input: str | None = None, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
    return done


@dataclass
class Project:
    name: str
    env_file: Path
    files: list[Path] = field(default_factory=lambda: [MAIN])

    def base(self) -> list[str]:
        args = ["docker", "compose", "-p", self.name, "--env-file", str(self.env_file)]
        for path in self.files:
            args += ["-f", str(path)]
        return args

    def compose(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run([*self.base(), *args], **kwargs)  # type: ignore[arg-type]

    def exec(
        self, service: str, *command: str, user: str | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        options = ["-T"] + (["-u", user] if user else [])
        return self.compose("exec", *options, service, *command, **kwargs)

    def health(self) -> dict[str, str]:
        out = self.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):
            rows = rows[0]
        return {row["Service"]: row.get("Health") or row["State"] for row in rows}

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout

    def wait_for(self, what: str, predicate: object, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout_s:.0f} s\n{self.logs()}")
            time.sleep(2)


def add_digits(project: Project, mounts: Path, seed: int) -> None:
    """600 rows of scikit-learn's digits as a CSV in the project's node data folder,
    added on its node as dataset ``digits`` (tag ``digits``)."""
    import numpy as np
    from sklearn.datasets import load_digits

    from fedward.demo.data import write_csv

    digits = load_digits()
    rows = np.random.default_rng(seed).permutation(len(digits.target))[:600]
    write_csv(
        mounts / "node" / "data" / "digits.csv",
        [f"pixel{i}" for i in range(64)],
        digits.data[rows],
        digits.target[rows],
    )
    project.exec(
        "node",
        *("fedward", "node", "dataset", "add", "--type", "csv", "--path", "/data/digits.csv"),
        *("--name", "digits", "--tags", "digits"),
    )


def write_env(path: Path, **settings: str) -> Path:
    """The .env of a test deployment: .env.sample with the given settings replaced."""
    lines = []
    for line in (DOCKER / ".env.sample").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={settings.pop(key)}" if key in settings and "=" in line else line)
    lines += [f"{key}={value}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def wg_transfer(project: Project) -> dict[str, tuple[int, int]]:
    """Bytes received and sent by the hub for each peer's public key."""
    out = project.exec("vpnserver", "wg", "show", "wg0", "transfer").stdout
    result = {}
    for line in out.splitlines():
        key, rx, tx = line.split()
        result[key] = (int(rx), int(tx))
    return result


def peer_keys(project: Project) -> dict[str, str]:
    """Peer id -> public key, from the hub's own listing of its WireGuard peers."""
    out = project.exec("vpnserver", "fedward", "vpn", "list").stdout
    keys = {}
    for line in out.splitlines():
        words = line.split()
        for word in words:
            if len(word) == 44 and word.endswith("="):
                keys[words[1] if words[0] in {"management", "node", "researcher"} else words[0]] = (
                    word
                )
    return keys
