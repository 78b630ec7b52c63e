"""What a job worker takes away from itself before it runs plan code.

Approved plan code is still code from outside the hospital, so the worker runs it with:
- a scrubbed environment (``clean_environment``: no broker password, upload token, VPN
  variables; set by the runner when it starts the process);
- resource limits (address space, CPU time; set by the runner);
- a Landlock file-system sandbox (Linux >= 5.13, no privileges needed): the worker may
  read only the Python installation, system libraries, its dataset and its job
  directory, and write only its job directory. Credentials kept anywhere else — the
  node's secrets, ``/etc/wireguard`` — cannot be opened. Where the kernel has no
  Landlock the worker says so in the node log and runs with the other two measures.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

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


def clean_environment(source: Mapping[str, str], home: Path) -> dict[str, str]:
    env = {key: source[key] for key in _ENV_ALLOWED if key in source}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLCONFIGDIR"] = str(home)
    return env


# --- Landlock ---------------------------------------------------------------------------

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ALL_ABI1 = (1 << 13) - 1  # every file-system right of Landlock ABI 1
_READ = _EXECUTE | _READ_FILE | _READ_DIR
_READ_WRITE = _ALL_ABI1

_SYSTEM_READ = (
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/sbin",
    "/proc",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/ssl/certs",
    "/etc/matplotlibrc",
)
_GPU_READ = (
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia0",
    "/dev/nvidia1",
    "/dev/nvidia2",
    "/dev/nvidia3",
    "/proc/driver/nvidia",
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    if sys.platform != "linux":
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(_SYS_CREATE_RULESET, None, 0, 1)
    return max(0, int(version))


def python_paths() -> list[Path]:
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    for entry in sys.path:
        if entry and Path(entry).exists():
            paths.add(Path(entry).resolve())
    return sorted(paths)


def restrict_filesystem(readable: Iterable[Path], writable: Iterable[Path]) -> bool:
    """Allow only ``readable`` (read) and ``writable`` (read/write) from now on.

    Returns False (and changes nothing) when the kernel has no Landlock.
    """
    if landlock_abi() < 1:
        log.warning("this kernel has no Landlock: the job worker runs without a file sandbox")
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _RulesetAttr(_ALL_ABI1)
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, access in [(p, _READ) for p in readable] + [(p, _READ_WRITE) for p in writable]:
            _add_rule(libc, ruleset, Path(path), access)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return True


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: Path, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist on this system needs no rule
    try:
        if not path.is_dir():
            # Directory-only rights are refused on files.
            access &= _EXECUTE | _WRITE_FILE | _READ_FILE | (1 << 14)
        rule = _PathBeneath(access, fd)
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)


def sandbox_argv(readable: Sequence[Path], writable: Sequence[Path], gpu: bool) -> list[str]:
    """Worker command-line arguments that ask it to sandbox itself at start."""
    argv = ["--sandbox"]
    argv += [f"--read={p}" for p in readable]
    argv += [f"--write={p}" for p in writable]
    if gpu:
        argv.append("--gpu")
    return argv


def apply_sandbox_from_argv(argv: Sequence[str]) -> None:
    if "--sandbox" not in argv:
        return
    readable = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--read=")]
    writable = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--write=")]
    system = [Path(p) for p in _SYSTEM_READ]
    if "--gpu" in argv:
        system += [Path(p) for p in _GPU_READ]
    restrict_filesystem([*system, *python_paths(), *readable], writable)
