"""Monitoring a real experiment: TensorBoard files read back by TensorBoard itself, the
progress display, the metrics plot, and ``fedward researcher tensorboard`` serving them.

Two node processes train with a loss reported at every batch (``log_interval = 1``); the
``ScalarEvent`` messages travel node worker -> node daemon -> broker -> researcher, and
end up as one ``train_loss`` series per node.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fedward.core.messages import ScalarEvent
from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation, free_port
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.progress import ProgressDisplay

TAGS = ["breast-cancer", "monitoring"]
NODES = ["node1", "node2"]
ROUNDS = 3


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Experiment, Path, str]]:
    workdir = tmp_path_factory.mktemp("monitoring")
    split = breast_cancer_split(workdir / "data", len(NODES))
    with LocalFederation(workdir, node_ids=NODES) as fed:
        for node_id, path in zip(NODES, split.node_files, strict=True):
            fed.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=TAGS)
        fed.start_nodes()
        output = io.StringIO()
        experiment = Experiment(
            tags=TAGS,
            training_plan=SGDClassifierPlan,
            model_args={"n_features": len(split.feature_names), "classes": split.classes},
            training_args={"epochs": 2, "batch_size": 16, "log_interval": 1},
            rounds=ROUNDS,
            round_timeout_s=60,
            federation=fed.researcher(),
            experiment_id="exp-monitored",
            tensorboard=workdir / "runs",
            progress=output,
        )
        experiment.run()
        yield experiment, workdir / "runs", output.getvalue()


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_each_node_has_its_own_training_loss_series_across_rounds(
    finished: tuple[Experiment, Path, str],
) -> None:
    _, runs, _ = finished
    root = runs / "exp-monitored"
    assert sorted(p.name for p in root.iterdir()) == ["aggregate", *NODES]
    for node_id in NODES:
        series = scalars(root / node_id, "train_loss")
        steps = [step for step, _ in series]
        print(f"{node_id}: {len(series)} train_loss points, steps {steps[0]}..{steps[-1]}")
        assert steps == sorted(set(steps)), "one point per step, in order"
        # Two epochs of batches per round, three rounds, numbered on from round to round.
        assert len(series) >= 3 * ROUNDS
        assert steps[-1] == len(series)
        assert all(loss >= 0 for _, loss in series)


def test_round_metrics_per_node_and_aggregated_are_logged(
    finished: tuple[Experiment, Path, str],
) -> None:
    experiment, runs, _ = finished
    root = runs / "exp-monitored"
    aggregated = scalars(root / "aggregate", "round/local_accuracy")
    assert [step for step, _ in aggregated] == [1, 2, 3]
    expected = [r.metrics["local_accuracy"] for r in experiment.history]
    assert [value for _, value in aggregated] == pytest.approx(expected, rel=1e-6)
    per_node = scalars(root / "node1", "round/global_accuracy")
    assert [step for step, _ in per_node] == [1, 2, 3]


def test_the_progress_display_prints_plain_lines_when_not_on_a_terminal(
    finished: tuple[Experiment, Path, str],
) -> None:
    _, _, output = finished
    assert "\r" not in output
    lines = output.splitlines()
    assert "round 1/3 asked node1, node2" in lines
    assert any(line.startswith("round 2/3 node2 ok (") for line in lines)
    assert any(line.startswith("round 3/3 done in ") and "2 ok" in line for line in lines)


def test_plot_writes_a_png_of_the_metrics(
    finished: tuple[Experiment, Path, str], tmp_path: Path
) -> None:
    experiment, _, _ = finished
    path = experiment.plot(tmp_path / "metrics.png", metrics=["global_accuracy", "local_f1"])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_fedward_researcher_tensorboard_serves_the_node_runs(
    finished: tuple[Experiment, Path, str],
) -> None:
    _, runs, _ = finished
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RESEARCHER_HOST"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedward.cli",
            "researcher",
            "tensorboard",
            "--logdir",
            str(runs),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        listed: list[str] = []
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/data/runs", timeout=2
                ) as reply:
                    listed = json.loads(reply.read())
                if len(listed) >= 3:
                    break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        assert sorted(listed) == [f"exp-monitored/{n}" for n in ["aggregate", *NODES]]
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- the live display on a terminal (no federation needed) --------------------------------


def test_on_a_terminal_one_line_is_redrawn_with_each_nodes_state_and_loss() -> None:
    screen = io.StringIO()
    display = ProgressDisplay(rounds=5, stream=screen, live=True)
    display.round_started(1, ["node1", "node2", "node3"])
    display.scalar(
        "node1",
        ScalarEvent(
            request_id="r1", experiment_id="e", round_index=1, name="train_loss", value=0.25, step=3
        ),
    )
    display.node_changed(1, "node2", "ok")
    display.node_changed(1, "node3", "late")
    assert display.line().startswith("round 2/5 ")
    assert "node1 … loss 0.25" in display.line()
    assert "node2 ✓" in display.line() and "node3 ⌛" in display.line()
    display.round_finished(
        RoundRecord(
            1,
            {
                "node2": NodeRound("node2", "ok", sample_count=3),
                "node3": NodeRound("node3", "late"),
            },
            4.0,
        )
    )
    frames = screen.getvalue().split("\r\x1b[K")
    assert len(frames) >= 4  # redrawn in place, not scrolled
    assert frames[-1] == "round 2/5 done in 4.0 s: 1 ok, dropped node3 late\n"


def test_events_of_another_round_do_not_disturb_the_line() -> None:
    display = ProgressDisplay(rounds=2, stream=io.StringIO(), live=True)
    display.round_started(1, ["node1"])
    display.node_changed(0, "node1", "failed")  # a straggler of round 0
    assert "node1 …" in display.line()


# --- where the servers listen ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "flag"), [("tensorboard", "--host "), ("notebook", "--ServerApp.ip=")]
)
def test_servers_listen_on_loopback_unless_researcher_host_says_otherwise(
    command: str, flag: str
) -> None:
    def printed(env: dict[str, str]) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "fedward.cli", "researcher", command, "--print-command"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return done.stdout

    base = {k: v for k, v in os.environ.items() if k != "RESEARCHER_HOST"}
    assert f"{flag}127.0.0.1 " in printed(base)
    assert f"{flag}10.222.0.7 " in printed({**base, "RESEARCHER_HOST": "10.222.0.7"})


def test_a_round_that_fails_on_a_terminal_leaves_its_line_and_a_newline() -> None:
    screen = io.StringIO()
    display = ProgressDisplay(rounds=2, stream=screen, live=True)
    display.round_started(0, ["node1"])
    display.node_changed(0, "node1", "late")
    display.close()
    assert screen.getvalue().endswith("node1 ⌛\n")
