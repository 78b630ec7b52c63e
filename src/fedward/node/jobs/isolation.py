"""Which isolation layers protect this node's job workers, and what they guarantee.

Layers (each decided once, at node start, from what the host offers):

    layer         what it is                               stops
    namespaces    bubblewrap: network, PID, mount, IPC,    every socket out; processes
                  UTS namespaces                           outliving the job; seeing
                                                           anything but Python, the
                                                           dataset and the job folder
    seccomp       libseccomp filter                        sockets (but Unix ones in a
                                                           namespace), io_uring, ptrace,
                                                           new namespaces, file handles
    landlock      kernel file and TCP rules (self-set)     files outside the allow-list
    cgroup        memory, pids and CPU for the job tree    a tree of processes using
                                                           more than one job's share
    rlimits       per-process memory, CPU, file size,      one process going too far
                  process count
    capabilities  a root worker keeps only                 root's powers (netlink,
                  CAP_DAC_READ_SEARCH                      modules, raw sockets...)

From the layers follow four guarantees a node can *require* (``[jobs] require``):

    no_network    namespaces or seccomp
    no_secrets    namespaces, landlock, or a root node running workers as ``nobody``
    process_tree  namespaces (PID) or cgroup: no process survives its job
    memory_tree   cgroup: memory bounded for the whole tree

By default ``no_network`` and ``no_secrets`` are required: a node where either cannot
hold runs no training plan at all, and says which layer is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fedward.config.model import JOB_GUARANTEES, SandboxMode
from fedward.errors import ConfigError
from fedward.node.jobs.bubblewrap import bubblewrap_program, probe_bubblewrap
from fedward.node.jobs.cgroups import CGROUP_ROOT
from fedward.node.jobs.landlock import landlock_abi
from fedward.node.jobs.seccomp import seccomp_available

log = logging.getLogger("fedward.sandbox")

Guarantee = str  # one of JOB_GUARANTEES
GUARANTEES = JOB_GUARANTEES
DEFAULT_REQUIRED: tuple[Guarantee, ...] = ("no_network", "no_secrets")
NOBODY_UID = 65534

_FIXES: dict[Guarantee, str] = {
    "no_network": "install bubblewrap (apt-get install bubblewrap) or libseccomp",
    "no_secrets": "install bubblewrap, or use a kernel with Landlock (5.13+)",
    "process_tree": "install bubblewrap, or run the node as root (cgroups)",
    "memory_tree": "run the node as root, or delegate a cgroup to it (systemd Delegate=yes)",
}


@dataclass(frozen=True)
class WorkerIsolation:
    """How the runner isolates workers on this host (decided once, at node start)."""

    bubblewrap: str | None = None  # the bwrap program, when workers start in namespaces
    landlock: int = 0  # the Landlock ABI the worker applies to itself; 0: none
    seccomp: bool = False
    cgroup_version: int | None = None  # 1 or 2 when job trees get a cgroup
    run_as: tuple[int, int] | None = None  # (uid, gid) to drop to, when not None
    root: bool = False  # a root worker drops its capabilities
    required: tuple[Guarantee, ...] = DEFAULT_REQUIRED
    enabled: bool = True  # False only for --no-sandbox: not even resource limits
    notes: tuple[str, ...] = field(default=(), compare=False)  # why layers are missing

    @classmethod
    def none(cls) -> WorkerIsolation:
        """No sandbox, same user: ``fedward node start --no-sandbox`` (debugging only)."""
        return cls(
            required=(), enabled=False, notes=("the sandbox is switched off (--no-sandbox)",)
        )

    @classmethod
    def for_host(
        cls,
        mode: SandboxMode = "auto",
        required: Sequence[Guarantee] = DEFAULT_REQUIRED,
        *,
        abi: int | None = None,
        euid: int | None = None,
        worker_files: Sequence[Path] | None = None,
        bubblewrap: str | Literal["probe"] | None = "probe",
        seccomp: bool | None = None,
        cgroup_version: int | Literal["probe"] | None = "probe",
    ) -> WorkerIsolation:
        """The strongest isolation ``mode`` allows here; keyword arguments default to this
        host's facts (tests pass their own)."""
        if mode == "none":
            return cls.none()
        notes: list[str] = []
        abi = landlock_abi() if abi is None else abi
        euid = os.geteuid() if euid is None else euid
        program = _probe_bubblewrap(mode, notes) if bubblewrap == "probe" else bubblewrap
        if mode == "bubblewrap" and program is None:
            raise ConfigError(
                "[jobs] sandbox = 'bubblewrap' but bubblewrap cannot run here: "
                + (notes[-1] if notes else "not installed"),
                hint="apt-get install bubblewrap, or use sandbox = 'auto'",
            )
        seccomp = seccomp_available() if seccomp is None else seccomp
        if not seccomp:
            notes.append("seccomp: libseccomp (pyseccomp) is not available")
        if cgroup_version == "probe":
            cgroup_version = _probe_cgroups(euid, notes)
        if abi < 1:
            notes.append("landlock: this kernel has none (Linux 5.13+ has it)")
        run_as = None
        if program is None and abi < 1 and euid == 0:
            run_as = _nobody_or_refuse(worker_files)
        return cls(
            bubblewrap=program,
            landlock=abi,
            seccomp=seccomp,
            cgroup_version=cgroup_version,
            run_as=run_as,
            root=euid == 0,
            required=tuple(required),
            notes=tuple(notes),
        )

    def without_cgroups(self, reason: str) -> WorkerIsolation:
        return dataclasses.replace(
            self, cgroup_version=None, notes=(*self.notes, f"cgroup: {reason}")
        )

    def guarantees(self) -> set[Guarantee]:
        held: set[Guarantee] = set()
        if self.bubblewrap or self.seccomp:
            held.add("no_network")
        if self.bubblewrap or self.landlock >= 1 or self.run_as is not None:
            held.add("no_secrets")
        if self.bubblewrap or self.cgroup_version:
            held.add("process_tree")
        if self.cgroup_version:
            held.add("memory_tree")
        return held

    def missing(self) -> list[Guarantee]:
        """Required guarantees this host cannot give: jobs are refused while any is missing."""
        held = self.guarantees()
        return [g for g in self.required if g not in held]

    def refusal(self) -> str | None:
        """Why this node runs no plan, with the fix; ``None`` when it may."""
        missing = self.missing()
        if not missing:
            return None
        fixes = "; ".join(f"{g}: {_FIXES[g]}" for g in missing)
        return (
            f"this node runs no training plans: required protection(s) "
            f"{', '.join(missing)} cannot be enforced here ({fixes})"
        )

    def layers(self) -> list[tuple[str, bool, str]]:
        """(layer, active, detail) for displays: ``node start``, ``node status``, doctor."""
        cap_detail = "only CAP_DAC_READ_SEARCH kept" if self.root else "not root: none to drop"
        user = f"workers run as uid {self.run_as[0]}" if self.run_as else ""
        return [
            (
                "namespaces",
                self.bubblewrap is not None,
                "bubblewrap: network, pid, mount, ipc, uts" if self.bubblewrap else "",
            ),
            ("seccomp", self.seccomp, "sockets, io_uring, ptrace, namespaces refused"),
            ("landlock", self.landlock >= 1, f"ABI {self.landlock}" if self.landlock else user),
            (
                "cgroup",
                self.cgroup_version is not None,
                f"v{self.cgroup_version}: memory, pids, cpu" if self.cgroup_version else "",
            ),
            ("rlimits", self.enabled, "memory, cpu, file size, processes"),
            ("capabilities", self.root, cap_detail),
        ]

    def describe(self) -> str:
        """One line: the active layers and the guarantees, or why jobs are refused."""
        active = [name for name, on, _ in self.layers() if on]
        held = sorted(self.guarantees())
        line = f"layers: {', '.join(active) or 'none'}; guarantees: {', '.join(held) or 'none'}"
        refusal = self.refusal()
        return f"{line}; {refusal}" if refusal else line

    def report_lines(self) -> list[str]:
        """The node's isolation, one line per layer, then the guarantees and notes."""
        lines = [
            f"{name:<13}{'on ' if on else 'off'}  {detail}".rstrip()
            for name, on, detail in self.layers()
        ]
        held = self.guarantees()
        lines.append(
            "guarantees   "
            + ", ".join(f"{g}{'' if g in held else ' (NOT held)'}" for g in GUARANTEES)
        )
        lines.append(f"required     {', '.join(self.required) or 'nothing'}")
        refusal = self.refusal()
        if refusal:
            lines.append(f"REFUSING JOBS: {refusal}")
        lines += [f"note         {note}" for note in self.notes]
        return lines


def _probe_bubblewrap(mode: SandboxMode, notes: list[str]) -> str | None:
    if mode == "basic":
        notes.append("namespaces: not used ([jobs] sandbox = 'basic')")
        return None
    program = bubblewrap_program()
    if program is None:
        notes.append("namespaces: bubblewrap (bwrap) is not installed")
        return None
    problem = probe_bubblewrap(program)
    if problem is not None:
        notes.append(f"namespaces: {problem}")
        return None
    return program


def _probe_cgroups(euid: int, notes: list[str]) -> int | None:
    """The cgroup version the node can manage, without changing anything yet."""
    if (CGROUP_ROOT / "cgroup.controllers").is_file() and not (CGROUP_ROOT / "memory").is_dir():
        version, base = 2, CGROUP_ROOT
    elif (CGROUP_ROOT / "memory").is_dir() and (CGROUP_ROOT / "pids").is_dir():
        version, base = 1, CGROUP_ROOT / "pids"
    else:
        notes.append("cgroup: no memory and pids controllers under /sys/fs/cgroup")
        return None
    if euid != 0 and not os.access(base, os.W_OK):
        notes.append("cgroup: the node is not root and has no delegated cgroup")
        return None
    return version


def _nobody_or_refuse(worker_files: Sequence[Path] | None) -> tuple[int, int]:
    """Without namespaces or Landlock, a root node runs workers as ``nobody``: files only
    root may read — secrets, the node database — stay closed."""
    run_as = _nobody()
    files = _interpreter_files() if worker_files is None else worker_files
    unreachable = [p for p in files if not readable_by(p, *run_as)]
    if unreachable:
        raise ConfigError(
            "without bubblewrap or Landlock, job workers must run as user nobody, "
            f"but nobody cannot read {unreachable[0]}",
            hint="install bubblewrap, or install Python and fedward where every user can "
            "read them, or start the node with --no-sandbox to run jobs without isolation",
        )
    log.warning("no bubblewrap and no Landlock: job workers run as user nobody")
    return run_as


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
