"""What a job worker may see and do, and the layers the worker sets on itself.

Approved plan code is still code from outside the hospital. The runner starts each worker
with a scrubbed environment (``clean_environment``: no broker password, upload token or
VPN variable), with ``python -I`` (no module from the work folder can shadow fedward's
own before the sandbox is up), inside bubblewrap's namespaces and a cgroup where the
host has them (``isolation``). Before the worker reads its first job it applies, in this
order (``apply_sandbox``):

1. resource limits (``setrlimit``): private memory, CPU time, file size, core dumps, and
   a process count where no cgroup bounds the tree;
2. Landlock: read the system, Python, its dataset and its job's inputs; write only its
   work folder; no TCP; no signals or abstract sockets outside (``landlock``);
3. for a root worker, every capability but CAP_DAC_READ_SEARCH (``capabilities``);
4. seccomp (``seccomp``), last, so that the steps above can still make their calls.

Paths are the same inside and outside the namespaces, so the rules read the same.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedward.node.jobs.capabilities import drop_capabilities
from fedward.node.jobs.landlock import restrict_self
from fedward.node.jobs.seccomp import apply_filter

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
    "/etc/matplotlibrc",
)
# Read-write files: a few devices, and the worker's own /proc entry, which CUDA writes (with
# O_TRUNC) while it initialises: without it, seen on an H100, cudaGetDeviceCount fails
# with "OS call failed".
_SYSTEM_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/proc/self")
# CUDA opens its device files read-write and reads the PCI topology.
_GPU_READ = ("/sys/devices", "/sys/bus/pci", "/sys/module/nvidia", "/proc/driver/nvidia")
_GPU_DEVICE_PREFIX = "nvidia"


def clean_environment(
    source: Mapping[str, str],
    home: Path,
    *,
    gpu: bool = False,
    threads: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``threads``: the thread-pool variables of the job's budget (``threads``), which
    override the node's own."""
    env = {key: source[key] for key in _ENV_ALLOWED if key in source}
    env.update(threads or {})
    folders = library_paths(source) if gpu else []
    if folders:
        env["LD_LIBRARY_PATH"] = ":".join(map(str, folders))
    env.setdefault("PATH", "/usr/bin:/bin")
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLCONFIGDIR"] = str(home)
    return env


def python_paths() -> list[Path]:
    """The interpreter's installation and import path: what a worker's imports read.

    ``sys.path[0]`` (the script's folder, or the current folder under ``python -m``) is
    left out unless it lies in the installation: a node started from a home folder must
    not open that folder to its plans.
    """
    import fedward

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    paths.add(Path(fedward.__file__).resolve().parent.parent)  # a source checkout's src/
    prefixes = {p.resolve() for p in (Path(sys.prefix), Path(sys.base_prefix))}
    for index, entry in enumerate(sys.path):
        if not entry or not Path(entry).exists():
            continue
        resolved = Path(entry).resolve()
        if index == 0 and not any(p == resolved or p in resolved.parents for p in prefixes):
            continue
        paths.add(resolved)
    # A path entry of "/" would open everything; nothing legitimate needs it.
    return sorted(p for p in paths if p != Path("/"))


def library_paths(source: Mapping[str, str]) -> list[Path]:
    """The node's ``LD_LIBRARY_PATH`` folders, for GPU workers: where an image keeps the
    NVIDIA driver's ``libcuda`` outside the loader's cache (``/usr/local/nvidia/lib64``
    on CUDA images), torch finds no device without it. The node's operator set it, not
    the researcher. Only absolute folders: an empty or relative entry would make the
    loader search the job's own work folder."""
    entries = source.get("LD_LIBRARY_PATH", "").split(":")
    folders = [Path(e) for e in dict.fromkeys(entries) if e]
    return [f for f in folders if f.is_absolute() and f != Path("/")]


def gpu_devices() -> list[Path]:
    try:
        return [p for p in Path("/dev").iterdir() if p.name.startswith(_GPU_DEVICE_PREFIX)]
    except OSError:
        return []


@dataclass(frozen=True)
class SelfSandbox:
    """The layers a worker applies to itself, as the runner asked on its command line."""

    landlock: bool = False
    seccomp: str = ""  # "", "unix" (namespaced: Unix sockets allowed) or "strict"
    read: tuple[Path, ...] = ()
    write: tuple[Path, ...] = ()
    gpu: bool = False
    memory_mb: int | None = None
    cpu_lifetime_s: int | None = None
    file_mb: int | None = None
    processes: int | None = None  # at most this many more processes of this user
    threads: int | None = None  # torch's intra-op pool, set again before each job

    def argv(self) -> list[str]:
        out: list[str] = []
        if self.landlock:
            out.append("--landlock")
        if self.seccomp:
            out.append(f"--seccomp={self.seccomp}")
        out += [f"--read={p}" for p in self.read]
        out += [f"--write={p}" for p in self.write]
        if self.gpu:
            out.append("--gpu")
        for name in ("memory_mb", "cpu_lifetime_s", "file_mb", "processes", "threads"):
            value = getattr(self, name)
            if value is not None:
                out.append(f"--{name.replace('_', '-')}={value}")
        return out

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> SelfSandbox:
        def values(name: str) -> list[str]:
            prefix = f"--{name}="
            return [a[len(prefix) :] for a in argv if a.startswith(prefix)]

        def number(name: str) -> int | None:
            found = values(name)
            return int(found[-1]) if found else None

        seccomp = values("seccomp")
        return cls(
            landlock="--landlock" in argv,
            seccomp=seccomp[-1] if seccomp else "",
            read=tuple(Path(p) for p in values("read")),
            write=tuple(Path(p) for p in values("write")),
            gpu="--gpu" in argv,
            memory_mb=number("memory-mb"),
            cpu_lifetime_s=number("cpu-lifetime-s"),
            file_mb=number("file-mb"),
            processes=number("processes"),
            threads=number("threads"),
        )


def apply_sandbox(asked: SelfSandbox) -> str:
    """Apply what the runner asked for, in the order of the module docstring; returns a line
    for the job log. Any failure raises: the worker then exits before reading a job."""
    applied = [_apply_limits(asked)]
    if asked.landlock:
        system = [Path(p) for p in _SYSTEM_READ]
        devices = [Path(p) for p in _SYSTEM_DEVICES]
        if asked.gpu:
            system += [Path(p) for p in _GPU_READ] + library_paths(os.environ)
            devices += gpu_devices()
        abi = restrict_self([*system, *python_paths(), *asked.read], asked.write, devices)
        if abi < 1:
            raise OSError("Landlock was requested but this kernel does not offer it")
        applied.append(f"Landlock ABI {abi}")
    if os.geteuid() == 0:
        bounded = drop_capabilities()
        applied.append("capabilities dropped" + ("" if bounded else " (bounding set kept)"))
    if asked.seccomp:
        _set_no_new_privileges()
        apply_filter(allow_unix_sockets=asked.seccomp == "unix", gpu=asked.gpu)
        applied.append(f"seccomp ({asked.seccomp})")
    return "sandboxed: " + ", ".join(applied)


def _apply_limits(asked: SelfSandbox) -> str:
    """Memory is bounded with RLIMIT_DATA, not RLIMIT_AS: RLIMIT_DATA counts the private
    writable memory a job can fill; RLIMIT_AS also counts address space merely reserved
    (glibc arenas, CUDA's tens of GiB), which breaks GPU workers (seen on an H100)."""
    if asked.memory_mb is not None:
        _lower_limit(resource.RLIMIT_DATA, asked.memory_mb << 20)
    if asked.cpu_lifetime_s is not None:
        _lower_limit(resource.RLIMIT_CPU, asked.cpu_lifetime_s)
    if asked.file_mb is not None:
        _lower_limit(resource.RLIMIT_FSIZE, asked.file_mb << 20)
    if asked.processes is not None:
        _lower_limit(resource.RLIMIT_NPROC, _processes_of_this_user() + asked.processes)
    _lower_limit(resource.RLIMIT_CORE, 0)
    return "limits set"


def _processes_of_this_user() -> int:
    """RLIMIT_NPROC counts every process of the real user, not only this job's."""
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _lower_limit(which: int, value: int) -> None:
    """Set soft and hard limits to ``value``, or keep a lower hard limit already in place."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _set_no_new_privileges() -> None:
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
