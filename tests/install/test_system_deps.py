"""``scripts/system-deps``: the one list of system packages, and ``make test`` stopping before
any test on a machine that lacks one and where it may not install it.

The "machine that lacks a package" is a list naming a package that no machine has
(``FEDWARD_SYSTEM_PACKAGES``); "not root" is the ``nobody`` account, through ``setpriv``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "system-deps"
PACKAGES = REPO / "deploy" / "system-packages.txt"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.fixture
def missing_list() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, its base is closed to other accounts.
    folder = Path(tempfile.mkdtemp(prefix="fedward-system-deps-"))
    folder.chmod(0o755)
    listing = folder / "packages.txt"
    listing.write_text(
        "# a package nobody has, and one everybody has\n"
        "fedward-no-such-package  command fedward-no-such-tool\n"
        "coreutils                command ls\n"
    )
    listing.chmod(0o644)
    yield listing
    shutil.rmtree(folder)


def _as_nobody(args: list[str], listing: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "FEDWARD_SYSTEM_PACKAGES": str(listing), "HOME": "/"}
    return subprocess.run(
        [*NOBODY, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_list_holds_what_the_suite_and_the_sandbox_need() -> None:
    done = subprocess.run([str(SCRIPT), "--list"], capture_output=True, text=True, check=True)
    needed = {"mosquitto", "wireguard-tools", "wireguard-go", "iproute2", "iptables"}
    needed |= {"iputils-ping", "chromium", "bubblewrap", "libseccomp2", "python3-venv"}
    assert needed <= set(done.stdout.split())


def test_ci_and_make_test_use_the_script_and_keep_no_list_of_their_own() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "apt-get" not in ci
    makefile = (REPO / "Makefile").read_text()
    assert "test: system-deps" in makefile and "scripts/system-deps\n" in makefile


def test_this_machine_has_every_package_so_the_suite_can_run() -> None:
    done = subprocess.run([str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_without_root_a_missing_package_stops_with_the_command_to_run(missing_list: Path) -> None:
    done = _as_nobody([str(SCRIPT)], missing_list)
    assert done.returncode == 1
    assert "missing: fedward-no-such-package" in done.stderr
    assert (
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends "
        "fedward-no-such-package\n" in done.stderr
    )
    assert "coreutils" not in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_make_test_without_root_stops_before_any_test(missing_list: Path) -> None:
    done = _as_nobody(["make", "--no-print-directory", "-C", str(REPO), "test"], missing_list)
    assert done.returncode != 0
    assert "sudo apt-get update && sudo apt-get install" in done.stderr
    assert "pytest" not in done.stdout + done.stderr  # stopped before the suite
