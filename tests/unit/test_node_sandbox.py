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
from fedward.node.jobs.landlock import handled_fs_rights, landlock_abi
from fedward.node.jobs.runner import JobRunner
from fedward.node.jobs.sandbox import (
    NOBODY_UID,
    WorkerIsolation,
    clean_environment,
    python_paths,
    readable_by,
)

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


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder every user may enter (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="fedward-sandbox-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_kernel_with_landlock_sandboxes_workers_in_place() -> None:
    isolation = WorkerIsolation.for_host(abi=3, euid=0, worker_files=[])
    assert isolation == WorkerIsolation(landlock=True)


def test_root_without_landlock_runs_workers_as_nobody(public_dir: Path) -> None:
    python = public_dir / "python"
    python.write_text("")
    python.chmod(0o755)
    isolation = WorkerIsolation.for_host(abi=0, euid=0, worker_files=[python])
    assert isolation.landlock is False
    assert isolation.run_as is not None and isolation.run_as[0] == NOBODY_UID


def test_root_without_landlock_refuses_when_nobody_cannot_start_python(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    python = private / "python"
    python.write_text("")
    with pytest.raises(ConfigError, match="--no-sandbox"):
        WorkerIsolation.for_host(abi=0, euid=0, worker_files=[python])


def test_non_root_without_landlock_can_only_warn() -> None:
    isolation = WorkerIsolation.for_host(abi=0, euid=1000, worker_files=[])
    assert isolation == WorkerIsolation(landlock=False, run_as=None)


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


def test_without_landlock_the_worker_user_owns_its_job_dir_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    database = state / "node.sqlite3"
    database.write_text("")
    database.chmod(0o600)
    runner = JobRunner(
        state / "jobs",
        JobLimits(),
        WorkerIsolation(landlock=False, run_as=(NOBODY_UID, NOBODY_UID)),
    )
    try:
        job_dir = runner.job_dir("exp-1")
    finally:
        runner.close()
    assert job_dir.stat().st_uid == NOBODY_UID
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700
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
