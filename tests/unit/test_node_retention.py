"""Job folders of experiments idle past the retention are deleted; the others are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from click.testing import CliRunner

from fedward.cli import cli
from fedward.config.model import NodeConfig
from fedward.node.jobs.job_folder import JobFolder
from fedward.node.services import open_node_services_for
from fedward.node.services.retention import collect_job_folders, running_experiments

HOUR = 3600.0


def job_folder(jobs_dir: Path, experiment_id: str, age_s: float, payload: int = 4096) -> Path:
    folder = JobFolder.create(jobs_dir, experiment_id)
    (folder.work / "scratch.bin").write_bytes(b"x" * payload)
    (folder.inputs / "plan.py").write_text("class Plan: pass\n")
    moment = time.time() - age_s
    for path in (folder.root, folder.inputs, folder.work, folder.outputs):
        os.utime(path, (moment, moment))
    return folder.root


def test_a_folder_idle_past_the_retention_is_deleted_and_a_recent_one_kept(
    tmp_path: Path,
) -> None:
    old = job_folder(tmp_path, "exp-old", age_s=25 * HOUR)
    recent = job_folder(tmp_path, "exp-recent", age_s=1 * HOUR)
    collected = collect_job_folders(tmp_path, keep_s=24 * HOUR)
    assert (collected.folders, collected.kept) == (1, 1)
    assert collected.bytes >= 4096
    assert not old.exists()
    assert recent.exists()


def test_a_folder_whose_experiment_still_runs_a_job_is_kept(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "exp-long-job", age_s=48 * HOUR)
    assert collect_job_folders(tmp_path, keep_s=HOUR, busy={"exp-long-job"}).folders == 0
    assert folder.exists()


def test_a_dry_run_deletes_nothing_and_stray_names_are_left_alone(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, "exp-1", age_s=48 * HOUR)
    (tmp_path / "not an id").mkdir()
    (tmp_path / "link").symlink_to(folder)
    collected = collect_job_folders(tmp_path, keep_s=HOUR, dry_run=True)
    assert collected.folders == 1
    assert folder.exists() and (tmp_path / "not an id").exists()
    assert collect_job_folders(tmp_path, keep_s=HOUR).folders == 1
    assert (tmp_path / "not an id").exists()


def test_running_jobs_in_the_job_log_mark_their_experiments_busy(tmp_path: Path) -> None:
    services = open_node_services_for(NodeConfig(node_id="n1", state_dir=tmp_path))
    done = services.jobs.start("exp-done", 0, "r1", "ds-1", "sha256:" + "a" * 64)
    services.jobs.finish(done, "succeeded")
    services.jobs.start("exp-running", 0, "r1", "ds-1", "sha256:" + "a" * 64)
    assert running_experiments(services.jobs) == {"exp-running"}
    services.close()


def test_fedward_node_gc_deletes_idle_folders_and_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = job_folder(state / "jobs", "exp-old", age_s=30 * HOUR)
    base = ["node", "--node-id", "n1", "--state-dir", str(state), "gc"]
    runner = CliRunner()
    dry = runner.invoke(cli, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 1 job folder(s)" in dry.output and old.exists()
    done = runner.invoke(cli, base)
    assert done.exit_code == 0, done.output
    assert "deleted 1 job folder(s)" in done.output and not old.exists()
    kept = runner.invoke(cli, [*base, "--keep-h", "100"])
    assert "deleted 0 job folder(s)" in kept.output


def test_the_retention_is_configured_in_the_node_toml(tmp_path: Path) -> None:
    from fedward.config.loader import load_node_config

    path = tmp_path / "node.toml"
    path.write_text('node_id = "n1"\n[retention]\nkeep_job_folders_h = 2\ncollect_every_s = 0\n')
    retention = load_node_config(path, env={}).retention
    assert (retention.keep_job_folders_h, retention.collect_every_s) == (2.0, 0.0)
