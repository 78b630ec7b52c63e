"""Bubblewrap (``bwrap``, what Flatpak uses): namespaces for a job worker.

The worker starts in:

- a new **network** namespace: only a loopback of its own, no route anywhere, so no
  socket of any kind (TCP, UDP, MPTCP, raw) reaches the broker, the upload server or the
  internet, and abstract Unix sockets of the host are out of sight;
- a new **PID** namespace that dies with the job: killing bubblewrap kills every process
  in it, ``setsid`` or not;
- a new **mount** namespace holding only the system libraries, the Python installation,
  its dataset (read-only), its job's inputs (read-only) and its work folder (the one
  writable place), with fresh ``/proc``, ``/dev`` and a size-limited ``/tmp``. The
  node's state, secrets, configuration and ``/etc/wireguard`` are simply not there;
- new IPC and UTS namespaces; no capabilities but, for a root node, CAP_DAC_READ_SEARCH
  (read the dataset whatever its owner); no new privileges.

Paths keep their host names inside, so the job's paths and Landlock's rules (applied by
the worker on top) are the same in both worlds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SYSTEM_READ = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/matplotlibrc",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
)
_GPU_READ = ("/sys/devices", "/sys/bus/pci", "/sys/module/nvidia")
_PROBE_TIMEOUT_S = 10.0


def bubblewrap_program() -> str | None:
    return shutil.which("bwrap")


def probe_bubblewrap(program: str) -> str | None:
    """``None`` when bubblewrap can make every namespace a worker needs here; else why not
    (a container without user namespaces or CAP_SYS_ADMIN, for example)."""
    argv = [program, *_namespace_flags(), "--ro-bind", "/", "/", "--", "/bin/true"]
    try:
        result = subprocess.run(argv, capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run ({exc})"
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap cannot create namespaces here: {detail[-1] if detail else 'no reason given'}"
    return None


def _namespace_flags() -> list[str]:
    return ["--unshare-all", "--die-with-parent", "--new-session"]


@dataclass(frozen=True)
class SandboxView:
    """What the worker's mount namespace shows besides the system and Python."""

    python: Sequence[Path]  # read-only: the interpreter, its libraries, fedward
    read_only: Sequence[Path]  # read-only: the dataset, the job's inputs
    writable: Sequence[Path]  # read-write: the work folder
    hidden: Sequence[Path]  # covered by an empty tmpfs if a bound path contains them
    gpu_devices: Sequence[Path] = ()
    tmp_mb: int = 256


def bubblewrap_argv(program: str, view: SandboxView, workdir: Path) -> list[str]:
    """``bwrap`` options that start a command in the sandbox; the command follows."""
    argv = [program, *_namespace_flags(), "--hostname", "fedward-job"]
    # Fresh file systems first: a bind below /tmp (a checkout, a dataset) must land on
    # top of the new /tmp, not under it.
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(view.tmp_mb << 20), "--tmpfs", "/tmp"]
    argv += ["--size", str(view.tmp_mb << 20), "--tmpfs", "/dev/shm"]
    bound = [Path(p) for p in _SYSTEM_READ] + [Path(p) for p in view.python]
    for folder in bound:
        argv += ["--ro-bind-try", str(folder), str(folder)]
    for secret in view.hidden:
        if any(_inside(Path(secret), folder) for folder in bound):
            argv += ["--tmpfs", str(secret)]
    for source in view.read_only:
        argv += ["--ro-bind", str(source), str(source)]
    for source in view.writable:
        argv += ["--bind", str(source), str(source)]
    if view.gpu_devices:
        for device in view.gpu_devices:
            argv += ["--dev-bind-try", str(device), str(device)]
        for name in _GPU_READ:
            argv += ["--ro-bind-try", name, name]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_DAC_READ_SEARCH"]
    argv += ["--chdir", str(workdir), "--"]
    return argv


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
