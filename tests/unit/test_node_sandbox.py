"""The job isolation policy: what a worker inherits and how it is isolated on each host."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.config.model import JobLimits
from fedward.errors import ConfigError
from fedward.node.jobs.isolation import GUARANTEES, NOBODY_UID, WorkerIsolation, readable_by
from fedward.node.jobs.landlock import handled_fs_rights, landlock_abi
from fedward.node.jobs.runner import JobRunner
from fedward.node.jobs.sandbox import clean_environment, library_paths, python_paths

NODE_ENV = {
    "PATH": "/usr/bin",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "2",
    "FEDWARD_BROKER_PASSWORD_FILE": "/secrets/broker",
    "FEDWARD_UPLOADS_TOKEN_FILE": "/secrets/token",
    "MQTT_BROKER": "10.220.0.2",
    "UPLOADS_URL": "http://10.220.0.3:8000",
    "VPN_SERVER_PSK": "psk-value",
    "VPN_IP": "10.221.0.2",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "PYTHONPATH": "/somewhere",
    "LD_PRELOAD": "/evil.so",
}


def test_worker_environment_keeps_no_credential_and_no_loader_override(tmp_path: Path) -> None:
    env = clean_environment(NODE_ENV, tmp_path)
    assert env["PATH"] == "/usr/bin" and env["LANG"] == "C.UTF-8"
    assert env["OMP_NUM_THREADS"] == "2"
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)
    assert set(env) == {
        "PATH",
        "LANG",
        "OMP_NUM_THREADS",
        "HOME",
        "TMPDIR",
        "MPLCONFIGDIR",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONNOUSERSITE",
    }


def test_a_gpu_worker_keeps_the_nodes_absolute_library_folders_only(tmp_path: Path) -> None:
    # CUDA images keep libcuda in /usr/local/nvidia/lib64, found through LD_LIBRARY_PATH
    # (seen on an H200 node: without it torch saw no device inside the worker).
    node_env = {**NODE_ENV, "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64::lib:/:/opt/cuda/lib64"}
    assert "LD_LIBRARY_PATH" not in clean_environment(node_env, tmp_path)
    gpu_env = clean_environment(node_env, tmp_path, gpu=True)
    # No empty or relative entry: the loader would search the job's own work folder.
    assert gpu_env["LD_LIBRARY_PATH"] == "/usr/local/nvidia/lib64:/opt/cuda/lib64"
    assert "LD_PRELOAD" not in gpu_env and "PYTHONPATH" not in gpu_env
    assert library_paths({}) == []


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder every user may enter (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="fedward-sandbox-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def host(**facts: object) -> WorkerIsolation:
    """``for_host`` with this test's facts instead of the machine's."""
    defaults: dict[str, object] = {
        "abi": 3,
        "euid": 0,
        "worker_files": [],
        "bubblewrap": "/usr/bin/bwrap",
        "seccomp": True,
        "cgroup_version": 2,
    }
    return WorkerIsolation.for_host(**{**defaults, **facts})  # type: ignore[arg-type]


def test_a_full_host_gives_every_guarantee() -> None:
    isolation = host()
    assert isolation.guarantees() == set(GUARANTEES)
    assert isolation.refusal() is None
    assert isolation.run_as is None


def test_without_bubblewrap_seccomp_and_landlock_still_keep_network_and_secrets() -> None:
    isolation = host(bubblewrap=None, cgroup_version=None)
    assert isolation.guarantees() == {"no_network", "no_secrets"}
    assert isolation.refusal() is None  # the default minimum holds
    assert "namespaces" in [name for name, on, _ in isolation.layers() if not on]


def test_a_host_below_the_required_minimum_refuses_jobs_and_says_why() -> None:
    isolation = host(bubblewrap=None, seccomp=False, cgroup_version=None)
    assert isolation.missing() == ["no_network"]
    refusal = isolation.refusal()
    assert refusal is not None and "no_network" in refusal and "bubblewrap" in refusal
    assert any(line.startswith("REFUSING JOBS") for line in isolation.report_lines())


def test_a_node_can_require_more_than_the_default() -> None:
    isolation = host(bubblewrap=None, cgroup_version=None, required=("memory_tree",))
    assert isolation.missing() == ["memory_tree"]


def test_basic_mode_never_uses_namespaces() -> None:
    isolation = WorkerIsolation.for_host(
        "basic", abi=3, euid=0, worker_files=[], seccomp=True, cgroup_version=1
    )
    assert isolation.bubblewrap is None
    assert isolation.guarantees() == set(GUARANTEES)  # the cgroup keeps the tree


def test_bubblewrap_mode_fails_loudly_where_bubblewrap_cannot_run() -> None:
    with pytest.raises(ConfigError, match="bubblewrap"):
        host(mode="bubblewrap", bubblewrap=None)


def test_root_without_namespaces_or_landlock_runs_workers_as_nobody(public_dir: Path) -> None:
    python = public_dir / "python"
    python.write_text("")
    python.chmod(0o755)
    isolation = host(abi=0, bubblewrap=None, worker_files=[python])
    assert isolation.run_as is not None and isolation.run_as[0] == NOBODY_UID
    assert "no_secrets" in isolation.guarantees()


def test_root_without_landlock_refuses_when_nobody_cannot_start_python(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    python = private / "python"
    python.write_text("")
    with pytest.raises(ConfigError, match="--no-sandbox"):
        host(abi=0, bubblewrap=None, worker_files=[python])


def test_non_root_without_namespaces_or_landlock_cannot_keep_secrets() -> None:
    isolation = host(abi=0, euid=1000, bubblewrap=None, cgroup_version=None)
    assert isolation.run_as is None
    assert "no_secrets" in isolation.missing()


def test_no_sandbox_switches_every_layer_off_and_requires_nothing() -> None:
    isolation = WorkerIsolation.none()
    assert isolation.guarantees() == set() and isolation.refusal() is None
    assert not any(on for _, on, _ in isolation.layers())


def test_readable_by_follows_the_mode_bits_of_every_directory(public_dir: Path) -> None:
    open_dir = public_dir / "open"
    open_dir.mkdir(mode=0o755)
    (open_dir / "file").write_text("x")
    (open_dir / "file").chmod(0o644)
    (open_dir / "secret").write_text("x")
    (open_dir / "secret").chmod(0o600)
    closed = public_dir / "closed"
    closed.mkdir(mode=0o700)
    (closed / "file").write_text("x")
    (closed / "file").chmod(0o644)
    nobody = (NOBODY_UID, NOBODY_UID)
    assert readable_by(open_dir / "file", *nobody)
    assert not readable_by(open_dir / "secret", *nobody)
    assert not readable_by(closed / "file", *nobody)
    assert not readable_by(public_dir / "missing", *nobody)


def test_a_nobody_worker_owns_its_work_folder_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    database = state / "node.sqlite3"
    database.write_text("")
    database.chmod(0o600)
    runner = JobRunner(
        state / "jobs", JobLimits(), WorkerIsolation(run_as=(NOBODY_UID, NOBODY_UID))
    )
    try:
        folder = runner.folder("exp-1")
    finally:
        runner.close()
    assert folder.work.stat().st_uid == NOBODY_UID
    assert stat.S_IMODE(folder.work.stat().st_mode) == 0o700
    for daemons in (folder.inputs, folder.outputs):
        assert daemons.stat().st_uid == 0  # the worker cannot write its inputs
    assert stat.S_IMODE(folder.outputs.stat().st_mode) == 0o700
    for parent in (state, state / "jobs"):
        mode = stat.S_IMODE(parent.stat().st_mode)
        assert mode & 0o001 and not mode & 0o004  # pass through, not list
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_newer_landlock_abis_handle_more_rights() -> None:
    assert handled_fs_rights(1) < handled_fs_rights(2) < handled_fs_rights(3)
    assert handled_fs_rights(7) == handled_fs_rights(3)  # ioctl (ABI 5) stays unhandled: CUDA


def test_this_kernel_has_landlock() -> None:
    # The job-isolation tests rely on it; a kernel without it must fail loudly here.
    assert landlock_abi() >= 1


def test_python_paths_never_open_the_whole_file_system() -> None:
    assert Path("/") not in python_paths()
