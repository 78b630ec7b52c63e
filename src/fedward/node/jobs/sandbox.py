"""What a job worker may see and do: the isolation policy.

Approved plan code is still code from outside the hospital, so it runs:

- with a scrubbed environment (``clean_environment``; the runner sets it): no broker
  password, upload token or VPN variable reaches the worker;
- under resource limits (private memory, CPU time; the runner sets them);
- in a Landlock sandbox the worker applies to itself before it loads plan code
  (``apply_sandbox_from_argv``): read the Python installation, system libraries, its
  dataset and its job directory; write only its job directory; no TCP; no signals to
  processes outside (``landlock``). The node's secrets, its database and
  ``/etc/wireguard`` cannot be opened;
- without root's powers: a root worker drops every capability but reading files
  (``capabilities``).

Where the kernel has no Landlock (before 5.13, or disabled) and the node runs as root,
the second line is the classic one (``WorkerIsolation.for_host``): the worker runs as
``nobody``, so files only root may read — secrets (written 0600), the node database — stay
closed. That needs Python and fedward installed where nobody can read them (the node
refuses to start otherwise, rather than run plans as root unconfined), and datasets
readable by nobody (a job that cannot read its data fails, with the reason in the node's
job log). A node that is not root and has no Landlock can only warn: its workers read
what its user reads.
"""

from __future__ import annotations

import logging
import os
import pwd
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedward.errors import ConfigError
from fedward.node.jobs.capabilities import drop_capabilities
from fedward.node.jobs.landlock import landlock_abi, restrict_self

log = logging.getLogger("fedward.sandbox")

# Environment variables a worker may inherit; everything else (secrets included) is dropped.
_ENV_ALLOWED = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
)

_SYSTEM_READ = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/proc",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/sys/fs/cgroup",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl/certs",
    "/etc/matplotlibrc",
)
# Read-write files: a few devices, and the worker's own /proc entry, which CUDA writes (with
# O_TRUNC) while it initialises: without it, seen on an H100, cudaGetDeviceCount fails
# with "OS call failed".
_SYSTEM_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/proc/self")
# CUDA opens its device files read-write and reads the PCI topology.
_GPU_READ = ("/sys/devices", "/sys/bus/pci", "/sys/module/nvidia", "/proc/driver/nvidia")
_GPU_DEVICE_PREFIX = "nvidia"

NOBODY_UID = 65534


def clean_environment(source: Mapping[str, str], home: Path) -> dict[str, str]:
    env = {key: source[key] for key in _ENV_ALLOWED if key in source}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLCONFIGDIR"] = str(home)
    return env


@dataclass(frozen=True)
class WorkerIsolation:
    """How the runner isolates workers on this host (decided once, at node start)."""

    landlock: bool  # the worker sandboxes its own file access
    run_as: tuple[int, int] | None = None  # (uid, gid) to drop to, when not None

    @classmethod
    def none(cls) -> WorkerIsolation:
        """No file sandbox, same user: ``fedward node start --no-sandbox`` (debugging)."""
        return cls(landlock=False)

    @classmethod
    def for_host(
        cls,
        *,
        abi: int | None = None,
        euid: int | None = None,
        worker_files: Sequence[Path] | None = None,
    ) -> WorkerIsolation:
        """The best isolation here; the arguments default to this host's facts."""
        abi = landlock_abi() if abi is None else abi
        euid = os.geteuid() if euid is None else euid
        worker_files = _interpreter_files() if worker_files is None else worker_files
        if abi >= 1:
            return cls(landlock=True)
        if euid == 0:
            run_as = _nobody()
            unreachable = [p for p in worker_files if not readable_by(p, *run_as)]
            if unreachable:
                raise ConfigError(
                    "this kernel has no Landlock, so job workers must run as user nobody, "
                    f"but nobody cannot read {unreachable[0]}",
                    hint="install Python and fedward where every user can read them, or "
                    "start the node with --no-sandbox to run jobs without isolation",
                )
            log.warning(
                "this kernel has no Landlock: job workers run as user nobody instead of root"
            )
            return cls(landlock=False, run_as=run_as)
        log.warning(
            "this kernel has no Landlock and the node is not root: job workers can read "
            "whatever this user can; keep the node's secrets and database unreadable to it"
        )
        return cls(landlock=False)

    def describe(self) -> str:
        if self.landlock:
            return f"Landlock sandbox (kernel ABI {landlock_abi()}), capabilities dropped"
        if self.run_as is not None:
            return f"no Landlock; workers run as uid {self.run_as[0]}"
        return "no file sandbox"


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return NOBODY_UID, NOBODY_UID


def _interpreter_files() -> list[Path]:
    """What a worker process must read to start at all."""
    import fedward

    return [Path(sys.executable).resolve(), Path(os.__file__), Path(fedward.__file__)]


def readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` (no supplementary groups) may read ``path``: every directory
    above it searchable, the file itself readable, by its mode bits."""

    def allows(target: Path, bit: int) -> bool:
        info = target.stat()
        if info.st_uid == uid:
            return bool(info.st_mode & (bit << 6))
        if info.st_gid == gid:
            return bool(info.st_mode & (bit << 3))
        return bool(info.st_mode & bit)

    try:
        path = path.resolve()
        return all(allows(d, 0o1) for d in path.parents) and allows(path, 0o4)
    except OSError:
        return False


def python_paths() -> list[Path]:
    """The interpreter's installation and import path: what imports need to read."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    for entry in sys.path:
        if entry and Path(entry).exists():
            paths.add(Path(entry).resolve())
    # A path entry of "/" would open everything; nothing legitimate needs it.
    return sorted(p for p in paths if p != Path("/"))


def _gpu_devices() -> list[Path]:
    try:
        return [p for p in Path("/dev").iterdir() if p.name.startswith(_GPU_DEVICE_PREFIX)]
    except OSError:
        return []


def sandbox_argv(readable: Sequence[Path], writable: Sequence[Path], gpu: bool) -> list[str]:
    """Worker command-line arguments that ask it to sandbox itself at start."""
    argv = ["--sandbox"]
    argv += [f"--read={p}" for p in readable]
    argv += [f"--write={p}" for p in writable]
    if gpu:
        argv.append("--gpu")
    return argv


def apply_sandbox_from_argv(argv: Sequence[str]) -> str:
    """Apply what ``sandbox_argv`` asked for; returns a line for the job log."""
    if "--sandbox" not in argv:
        return "no sandbox requested"
    readable = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--read=")]
    writable = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--write=")]
    system = [Path(p) for p in _SYSTEM_READ]
    devices = [Path(p) for p in _SYSTEM_DEVICES]
    if "--gpu" in argv:
        system += [Path(p) for p in _GPU_READ]
        devices += _gpu_devices()
    abi = restrict_self([*system, *python_paths(), *readable], writable, devices)
    if abi < 1:
        # The runner asks for a sandbox only where the kernel has one.
        raise OSError("Landlock was requested but this kernel does not offer it")
    applied = f"sandboxed: Landlock ABI {abi}"
    if os.geteuid() == 0:
        bounded = drop_capabilities()
        applied += ", capabilities dropped" + ("" if bounded else " (bounding set kept)")
    return applied
