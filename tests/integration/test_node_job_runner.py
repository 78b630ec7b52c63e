"""Real job workers (separate processes, Landlock, limits) driven by the ``JobRunner``.

The plans are in ``tests/node_job_plans/probes.py``; they report what they saw as metrics.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedward.config.model import JobLimits
from fedward.core.plan_digest import normalise_source
from fedward.errors import JobError, JobOutOfCpu, JobOutOfMemory, JobTimedOut
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source, write_canonical_plan
from fedward.node.jobs import wire
from fedward.node.jobs.exchange import WorkerKey
from fedward.node.jobs.isolation import WorkerIsolation
from fedward.node.jobs.runner import JobRunner
from fedward.node.jobs.threads import usable_cpus
from fedward.protocol.params_wire import load_params, save_params
from tests.node_job_plans import probes
from tests.node_job_plans.expectations import WORKER_ENV
from tests.waiting import LOADED_MACHINE_S, eventually

CAP_DAC_READ_SEARCH = 1 << 2


@dataclass
class Jobs:
    """A runner over a node-like state folder, and a way to run one plan on its dataset."""

    state_dir: Path
    dataset: Path
    limits: JobLimits
    runner: JobRunner = field(init=False)
    scalars: list[wire.ScalarOut] = field(default_factory=list)

    isolation: WorkerIsolation | None = None
    job_id: str = ""
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)  # the last result's

    def __post_init__(self) -> None:
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        self.runner = JobRunner(self.state_dir / "jobs", self.limits, self.isolation)

    def run(
        self,
        cls: type[TrainingPlan],
        model_args: dict[str, Any] | None = None,
        training_args: dict[str, Any] | None = None,
        *,
        experiment_id: str = "exp-1",
        deadline_s: float = 60.0,
    ) -> wire.ResultOut:
        folder = self.runner.folder(experiment_id)
        plan_path, sha = write_canonical_plan(plan_source(cls), folder.inputs)
        self.job_id = f"job-{time.monotonic_ns()}"
        save_params({"w": np.zeros(2)}, folder.inputs / f"{self.job_id}.safetensors")
        spec = wire.JobSpec(
            job_id=self.job_id,
            plan_path=str(plan_path),
            plan_sha256=sha,
            plan_class=cls.__name__,
            model_args=model_args or {},
            training_args=training_args or {},
            dataset_id="dataset-1",
            data_type="csv",
            dataset_path=str(self.dataset),
            params_in=str(folder.inputs / f"{self.job_id}.safetensors"),
            cpu_seconds=self.limits.cpu_s,
        )
        result = self.runner.run(
            WorkerKey(experiment_id, sha, "dataset-1"),
            spec,
            dataset=self.dataset,
            deadline_s=deadline_s,
            on_scalar=self.scalars.append,
        )
        try:  # the sealed files the result came with, read as the daemon would
            self.outputs = [load_params(Path(f"/proc/self/fd/{fd}")) for fd in result.files]
        finally:
            result.close()
        return result.report


@pytest.fixture
def make_jobs(tmp_path: Path) -> Iterator[Callable[..., Jobs]]:
    made: list[Jobs] = []
    dataset = tmp_path / "data" / "table.csv"
    dataset.parent.mkdir()
    dataset.write_text("a,b,label\n1,2,0\n3,4,1\n")

    def make(isolation: WorkerIsolation | None = None, **limits: Any) -> Jobs:
        jobs = Jobs(tmp_path / "state", dataset, JobLimits(**limits), isolation=isolation)
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        jobs.runner.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], timeout_s: float = LOADED_MACHINE_S) -> bool:
    return eventually(condition, timeout_s)


def test_worker_with_torch_imported_starts_under_the_default_memory_limit(
    make_jobs: Callable[..., Jobs],
) -> None:
    result = make_jobs().run(probes.TorchImportPlan)
    assert result.sample_count == 1 and result.metrics["loss"] >= 0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_job_runs_with_the_nodes_thread_budget(
    make_jobs: Callable[..., Jobs], threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "64")  # the node's own is overridden
    jobs = make_jobs(threads=threads)
    result = jobs.run(probes.ThreadsPlan)
    assert result.metrics["omp_num_threads"] == threads
    assert result.metrics["torch_threads"] == threads
    assert result.threads == threads  # what the worker reports in its reply


def test_the_worker_holds_torch_to_the_budget_when_a_plan_changed_the_variable(
    make_jobs: Callable[..., Jobs],
) -> None:
    # The plan sets OMP_NUM_THREADS=2 (and MKL's) and imports torch before the job starts;
    # torch would take 2 (on a host with 2 CPUs or more) were the worker not to set its pool.
    result = make_jobs(threads=1).run(probes.ThreadsPlan, {"set_first": 2})
    assert result.metrics["omp_num_threads"] == 2
    assert result.metrics["torch_threads"] == 1


def test_the_default_budget_shares_the_cpus_among_parallel_jobs(
    make_jobs: Callable[..., Jobs],
) -> None:
    jobs = make_jobs(max_parallel=1)
    expected = jobs.runner.threads.threads
    assert expected == usable_cpus()  # this host's CPUs, all for one job at a time
    assert jobs.run(probes.ThreadsPlan).metrics["omp_num_threads"] == expected
    assert any(line.startswith("threads") for line in jobs.runner.report_lines())


def test_warm_worker_is_reused_across_rounds(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs()
    workers = {jobs.run(probes.PidPlan).metrics["worker"] for _ in range(3)}
    assert len(workers) == 1
    assert len(jobs.runner.worker_pids()) == 1


def test_each_experiment_gets_its_own_worker(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs()
    first = jobs.run(probes.PidPlan, experiment_id="exp-a").metrics["worker"]
    second = jobs.run(probes.PidPlan, experiment_id="exp-b").metrics["worker"]
    assert first != second


def test_idle_worker_is_stopped(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs(idle_worker_s=0.3)
    worker = jobs.run(probes.PidPlan).metrics["worker"]
    (pid,) = jobs.runner.worker_pids().values()
    assert wait_until(lambda: not alive(pid))
    assert jobs.runner.worker_pids() == {}
    assert jobs.run(probes.PidPlan).metrics["worker"] != worker  # a fresh one next time


def test_worker_is_replaced_after_a_failure(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs()
    worker = jobs.run(probes.PidPlan).metrics["worker"]
    (pid,) = jobs.runner.worker_pids().values()
    with pytest.raises(JobError) as failed:
        jobs.run(probes.PidPlan, training_args={"fail": True})
    assert failed.value.code == "job_failed"
    assert failed.value.message == "training plan raised ValueError: asked to fail"
    assert not alive(pid)
    assert jobs.run(probes.PidPlan).metrics["worker"] != worker


def test_a_plan_failure_names_the_plans_own_lines_only(make_jobs: Callable[..., Jobs]) -> None:
    with pytest.raises(JobError) as failed:
        make_jobs().run(probes.PidPlan, training_args={"fail": True})
    canonical = normalise_source(plan_source(probes.PidPlan)).splitlines()
    (frame,) = failed.value.plan_frames  # the worker's and fedward's frames stay out
    assert frame.function == "train"
    assert canonical[frame.line - 1].strip() == "raise ValueError('asked to fail')"


def test_the_worker_refuses_a_training_arg_the_plan_does_not_read(
    make_jobs: Callable[..., Jobs],
) -> None:
    with pytest.raises(JobError, match="unknown training argument 'fial'; did you mean 'fail'"):
        make_jobs().run(probes.PidPlan, training_args={"fial": True})


def test_failure_messages_never_carry_the_nodes_paths(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs()
    with pytest.raises(JobError) as failed:
        jobs.run(probes.PidPlan, training_args={"fail": "dataset"})
    assert failed.value.code == "job_failed"
    assert failed.value.message == "cannot read <dataset> (in <dataset folder>)"


def test_plan_allocating_past_the_memory_limit_is_stopped(
    make_jobs: Callable[..., Jobs],
) -> None:
    jobs = make_jobs(memory_mb=768)
    with pytest.raises(JobOutOfMemory) as stopped:
        jobs.run(probes.MemoryHogPlan, {"megabytes": 2048})
    assert stopped.value.code == "job_memory_limit"
    assert jobs.run(probes.MemoryHogPlan, {"megabytes": 64}).metrics["held"] > 0


def test_endless_loop_is_stopped_at_the_cpu_limit(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs(cpu_s=2)
    with pytest.raises(JobOutOfCpu) as stopped:
        jobs.run(probes.SpinPlan, deadline_s=120)
    assert stopped.value.code == "job_cpu_limit"
    assert [s.name for s in jobs.scalars] == ["started"]


def test_plan_that_never_returns_is_stopped_at_its_deadline(
    make_jobs: Callable[..., Jobs],
) -> None:
    jobs = make_jobs()
    with pytest.raises(JobTimedOut) as stopped:
        jobs.run(probes.SleepPlan, deadline_s=1.5)
    assert stopped.value.code == "job_timeout"
    assert jobs.runner.worker_pids() == {}


def snoop(jobs: Jobs) -> dict[str, float]:
    """What ``SnoopPlan`` gets at on a node-like state folder holding a secret."""
    secret = jobs.state_dir / "broker.password"
    secret.write_text("broker-password-value")
    secret.chmod(0o600)
    database = jobs.state_dir / "node.sqlite3"
    database.write_text("SQLite format 3")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    paths = {
        "secret": str(secret),
        "database": str(database),
        "state_dir": str(jobs.state_dir),
        "daemon_environ": f"/proc/{os.getpid()}/environ",
        "daemon_memory": f"/proc/{os.getpid()}/mem",
        "shadow": "/etc/shadow",
        "dataset": str(jobs.dataset),
    }
    try:
        result = jobs.run(probes.SnoopPlan, {"paths": paths, "connect": ["127.0.0.1", port]})
        metrics = dict(result.metrics)
        with contextlib.suppress(BlockingIOError):
            listener.accept()[0].close()
            metrics["accepted"] = 1.0
    finally:
        listener.close()
    return metrics


def test_plan_cannot_read_node_secrets_connect_out_or_signal_the_node(
    make_jobs: Callable[..., Jobs],
) -> None:
    metrics = snoop(make_jobs())
    assert "accepted" not in metrics
    assert metrics["read:dataset"] == 1.0  # the probe works: it reads what it may
    assert {k: v for k, v in metrics.items() if k.startswith("read:") and v} == {
        "read:dataset": 1.0
    }
    assert metrics["tcp_connect"] == 0.0
    assert metrics["signal_parent"] == 0.0
    assert {k.removeprefix("env:") for k in metrics if k.startswith("env:")} <= WORKER_ENV
    if os.geteuid() == 0:
        assert metrics["capabilities"] == CAP_DAC_READ_SEARCH
        assert metrics["bounding_capabilities"] == CAP_DAC_READ_SEARCH


def test_without_the_sandbox_the_same_probe_reads_the_secret(
    make_jobs: Callable[..., Jobs],
) -> None:
    # The control: the probe is not blind, it is the sandbox that stops it.
    metrics = snoop(make_jobs(WorkerIsolation.none()))
    assert metrics["read:secret"] == 1.0 and metrics["tcp_connect"] == 1.0


def test_result_parameters_are_written_by_the_worker(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs()
    result = jobs.run(probes.PidPlan)
    assert result.sample_count == 1 and result.extras == []
    np.testing.assert_array_equal(jobs.outputs[0]["w"], np.ones(2))
