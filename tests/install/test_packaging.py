"""fedward installs the way the README says: a wheel (``make dist``) that carries every file the
components need, with a ``fedward`` command that runs from wherever it was installed, and
``make install-cli`` putting that command where every shell, and sudo, find it.

The wheel is installed without its dependencies (they are this interpreter's already), into
a folder of its own, so the test needs no package index; CI also installs it with its
dependencies into a clean virtual environment (``make dist-check``).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fedward

REPO = Path(__file__).resolve().parents[2]
# sudo's secure_path on Debian and Ubuntu; `sudo fedward` sees this PATH and no other.
PIP_OFFLINE = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
SUDO_SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)]
    done = subprocess.run(
        [*command, str(REPO)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "License classifiers are deprecated" not in done.stderr
    assert "project.license" not in done.stderr  # the TOML-table form is going away
    (built,) = out.glob("fedward-*.whl")
    return built


def test_the_wheel_is_named_after_the_version_fedward_reports(wheel: Path) -> None:
    assert wheel.name.startswith(f"fedward-{fedward.__version__}-py3-none-any")


def test_the_wheel_carries_templates_static_files_plans_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "fedward/py.typed",
        "fedward/gui/templates/base.html",
        "fedward/gui/static/style.css",
        "fedward/learning/plans/sklearn_classifier.py",
        "fedward/doctor/cli.py",
    ]:
        assert needed in names, needed
    metadata = (
        zipfile.ZipFile(wheel).read(f"fedward-{fedward.__version__}.dist-info/METADATA").decode()
    )
    assert "License-Expression: Apache-2.0" in metadata
    assert "Provides-Extra: all" in metadata


def test_the_installed_command_runs_from_its_own_copy(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [*PIP_OFFLINE, "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    env = {"PATH": f"{target / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(target)}
    version = subprocess.run(
        ["fedward", "--version"], capture_output=True, text=True, env=env, cwd="/", check=True
    )
    assert version.stdout.strip() == f"fedward, version {fedward.__version__}"
    where = subprocess.run(
        [sys.executable, "-c", "import fedward; print(fedward.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=True,
    )
    assert where.stdout.startswith(str(target))
    helped = subprocess.run(["fedward", "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "doctor" in helped.stdout


def test_install_cli_links_a_command_that_a_new_shell_and_sudo_find(tmp_path: Path) -> None:
    prefix = tmp_path / "usr-local"
    make = ["make", "--no-print-directory", "-C", str(REPO), f"PREFIX={prefix}"]
    subprocess.run([*make, "install-cli"], check=True, capture_output=True, timeout=60)
    link = prefix / "bin" / "fedward"
    assert link.is_symlink() and link.resolve() == (REPO / ".venv" / "bin" / "fedward").resolve()
    # A new login shell knows nothing of .venv; sudo resets PATH to its secure_path.
    for path in (
        f"{prefix / 'bin'}:/usr/bin:/bin",
        SUDO_SECURE_PATH.replace("/usr/local", str(prefix)),
    ):
        done = subprocess.run(
            ["fedward", "--version"],
            capture_output=True,
            text=True,
            env={"PATH": path, "HOME": str(tmp_path)},
            cwd="/",
            check=False,
        )
        assert done.returncode == 0, done.stderr
    subprocess.run([*make, "uninstall-cli"], check=True, capture_output=True, timeout=60)
    assert not link.exists()
