"""The per-job CPU thread budget: ``[jobs] threads``, its default, and the worker's env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedward.config.loader import load_node_config
from fedward.config.model import JobLimits
from fedward.errors import ConfigError
from fedward.node.jobs.sandbox import SelfSandbox, clean_environment
from fedward.node.jobs.threads import (
    THREAD_VARIABLES,
    ThreadBudget,
    cpu_quota,
    default_threads,
    usable_cpus,
)


def node_config(tmp_path: Path, jobs: str) -> JobLimits:
    path = tmp_path / "node.toml"
    path.write_text(f'node_id = "n"\n[jobs]\n{jobs}\n', encoding="utf-8")
    return load_node_config(path, env={}).jobs


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [("threads = 3", 3), ('threads = "auto"', None)])
def test_threads_is_read_from_the_jobs_table(tmp_path: Path, text: str, expected: int) -> None:
    assert node_config(tmp_path, text).threads == expected


def test_threads_defaults_to_auto(tmp_path: Path) -> None:
    assert node_config(tmp_path, "max_parallel = 2").threads is None


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "true"])
def test_threads_below_one_or_not_a_whole_number_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[jobs\] threads must be a whole number"):
        node_config(tmp_path, f"threads = {value}")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ('"atuo"', "did you mean 'auto'?"),
        ('"4"', "write the number without quotes: threads = 4"),
        ('"many"', "for example threads = 2, or threads = 'auto'"),
    ],
)
def test_a_misspelt_threads_value_says_what_was_meant(
    tmp_path: Path, value: str, hint: str
) -> None:
    with pytest.raises(ConfigError, match="threads must be") as caught:
        node_config(tmp_path, f"threads = {value}")
    assert caught.value.hint == hint


def test_a_misspelt_threads_key_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'threads'"):
        node_config(tmp_path, "thread = 2")


def test_threads_must_leave_room_in_pids_max() -> None:
    assert JobLimits(threads=32, pids_max=64).threads == 32
    with pytest.raises(ConfigError, match="pids_max") as caught:
        JobLimits(threads=33, pids_max=64)
    assert caught.value.hint == "at most 32 threads, or raise pids_max"


# -- the default --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "max_parallel", "expected"),
    [(16, 4, 4), (16, 3, 5), (2, 4, 1), (1, 1, 1), (64, 1, 64)],
)
def test_the_default_shares_the_cpus_among_parallel_jobs(
    cpus: int, max_parallel: int, expected: int
) -> None:
    assert default_threads(cpus, JobLimits(max_parallel=max_parallel)) == expected


def test_the_default_stays_within_pids_max() -> None:
    assert default_threads(256, JobLimits(max_parallel=1, pids_max=64)) == 32


def test_a_configured_number_wins_over_the_default() -> None:
    budget = ThreadBudget.for_limits(JobLimits(threads=3, max_parallel=4), cpus=64)
    assert budget == ThreadBudget(3, "set in [jobs] threads")
    assert budget.describe() == "3 threads per job (set in [jobs] threads)"


def test_the_default_says_how_it_was_reached() -> None:
    budget = ThreadBudget.for_limits(JobLimits(max_parallel=4), cpus=16)
    assert budget.describe() == "4 threads per job (16 CPUs / 4 jobs)"
    assert ThreadBudget.for_limits(JobLimits(), cpus=2).describe().startswith("1 thread per")


def cgroup_tree(tmp_path: Path, proc_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup file system of real files, and a /proc/self/cgroup naming the process's group."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="ascii")
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_line + "\n", encoding="ascii")
    return root, proc


def test_a_v2_quota_of_an_ancestor_counts(tmp_path: Path) -> None:
    root, proc = cgroup_tree(
        tmp_path,
        "0::/system.slice/node.service",
        {
            "cpu.max": "max 100000\n",
            "system.slice/cpu.max": "150000 100000\n",  # 1.5 CPUs for the whole slice
            "system.slice/node.service/cpu.max": "max 100000\n",
        },
    )
    assert cpu_quota(root, proc) == 1.5
    assert usable_cpus(root, proc) == min(2, len(os.sched_getaffinity(0)))


def test_the_tightest_v2_quota_wins(tmp_path: Path) -> None:
    root, proc = cgroup_tree(
        tmp_path, "0::/a/b", {"a/cpu.max": "800000 100000\n", "a/b/cpu.max": "50000 100000\n"}
    )
    assert cpu_quota(root, proc) == 0.5
    assert usable_cpus(root, proc) == 1


def test_a_v1_quota_is_read_from_the_cpu_controller(tmp_path: Path) -> None:
    root, proc = cgroup_tree(
        tmp_path,
        "7:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc",
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpu_quota(root, proc) == 3.0


@pytest.mark.parametrize(
    ("proc_line", "files"),
    [
        ("0::/", {"cpu.max": "max 100000\n"}),
        ("0::/a", {}),  # no cpu controller enabled: no cpu.max
        ("4:cpu,cpuacct:/", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n"}),
        ("0::/a", {"a/cpu.max": "garbage\n"}),
    ],
)
def test_no_quota_leaves_the_affinity(
    tmp_path: Path, proc_line: str, files: dict[str, str]
) -> None:
    root, proc = cgroup_tree(tmp_path, proc_line, files)
    assert cpu_quota(root, proc) is None
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_an_unreadable_proc_file_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path, tmp_path / "missing") is None


# -- what the worker is given -------------------------------------------------------------


def test_the_worker_environment_carries_the_budget_over_the_nodes_own(tmp_path: Path) -> None:
    node_env = {"PATH": "/usr/bin", "OMP_NUM_THREADS": "64", "MKL_NUM_THREADS": "64"}
    budget = ThreadBudget(2, "set in [jobs] threads")
    env = clean_environment(node_env, tmp_path, threads=budget.environment())
    assert {name: env[name] for name in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "2")
    assert {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"} <= set(THREAD_VARIABLES)
    gpu_env = clean_environment(node_env, tmp_path, gpu=True, threads=budget.environment())
    assert gpu_env["OMP_NUM_THREADS"] == "2"


def test_the_worker_is_told_its_budget_on_its_command_line() -> None:
    asked = SelfSandbox(landlock=True, threads=3)
    assert "--threads=3" in asked.argv()
    assert SelfSandbox.from_argv(asked.argv()) == asked
    assert SelfSandbox.from_argv(SelfSandbox().argv()).threads is None
