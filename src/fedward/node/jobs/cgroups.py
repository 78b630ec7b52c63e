"""Control groups: limits that hold for a job's whole process tree, on cgroup v1 and v2.

Resource limits (``setrlimit``) bound one process each; a plan that forks escapes them
(each child gets its own allowance). A cgroup counts the whole tree, wherever its
processes go (``setsid`` or not): memory (``memory.max`` / ``memory.limit_in_bytes``),
the number of processes (``pids.max``), CPU time (read from the group and enforced by
the runner), and it can kill every member at once.

Each worker gets its own group under the node's, ``fedward-<node>-<pid>/worker-<n>``:

- v2 (one unified tree, what current distributions mount): the node's group must hand
  the memory, pids and cpu controllers to its children, which a group holding processes
  cannot do unless it is the root. The daemon therefore moves itself into a leaf
  (``.../fedward-<node>-<pid>/daemon``) first; under systemd, give the unit
  ``Delegate=yes``.
- v1 (one tree per controller, as on older hosts and this project's CI): a group is
  made in the memory, pids and cpuacct trees, under the daemon's own group in each.

Where neither works (not root, no delegation), ``CgroupHost.detect`` says why and the
node falls back to per-process limits.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpuacct")
_V2_CONTROLLERS = ("memory", "pids", "cpu")
_KILL_ROUNDS = 50


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; v2's line is under ``""``."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


def _read(path: Path) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def _stat_field(text: str, name: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


@dataclass(frozen=True)
class CgroupHost:
    """Where this node makes its workers' groups; ``detect`` finds it."""

    version: int
    node_dirs: tuple[Path, ...]  # the node's group: one per v1 controller, one for v2
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def detect(cls, node_id: str, root: Path = CGROUP_ROOT) -> tuple[CgroupHost | None, str]:
        """The host's cgroups, ready for workers, or ``None`` and the reason."""
        try:
            own = _own_paths(_read(Path("/proc/self/cgroup")))
        except OSError as exc:
            return None, f"cannot read /proc/self/cgroup ({exc.strerror})"
        name = f"fedward-{node_id}-{os.getpid()}"
        try:
            if (root / "cgroup.controllers").is_file() and set(own) == {""}:
                return cls._v2(root, own[""], name), "cgroup v2"
            if all((root / c).is_dir() for c in _V1_CONTROLLERS):
                return cls._v1(root, own, name), "cgroup v1"
        except OSError as exc:
            return None, f"cannot create a cgroup ({exc.strerror or exc})"
        return None, "no memory, pids and cpu controllers found under /sys/fs/cgroup"

    @classmethod
    def _v1(cls, root: Path, own: dict[str, str], name: str) -> CgroupHost:
        dirs = []
        for controller in _V1_CONTROLLERS:
            base = root / controller / own.get(controller, "/").lstrip("/")
            node_dir = base / name
            node_dir.mkdir(exist_ok=True)
            dirs.append(node_dir)
        return cls(version=1, node_dirs=tuple(dirs))

    @classmethod
    def _v2(cls, root: Path, own: str, name: str) -> CgroupHost:
        base = root / own.lstrip("/")
        wanted = " ".join(f"+{c}" for c in _V2_CONTROLLERS)
        if not set(_V2_CONTROLLERS) <= set(_read(base / "cgroup.controllers").split()):
            raise OSError(f"the node's cgroup does not offer {', '.join(_V2_CONTROLLERS)}")
        node_dir = base / name
        node_dir.mkdir(exist_ok=True)
        leaf = node_dir / "daemon"
        leaf.mkdir(exist_ok=True)
        try:
            _write(base / "cgroup.subtree_control", wanted)
        except OSError:
            if base == root:
                raise
            # A group with processes cannot delegate: leave it for a leaf of our own.
            # Only possible when the daemon is the group's only process (a service).
            _write(leaf / "cgroup.procs", str(os.getpid()))
            _write(base / "cgroup.subtree_control", wanted)
        else:
            _write(leaf / "cgroup.procs", str(os.getpid()))
        _write(node_dir / "cgroup.subtree_control", wanted)
        return cls(version=2, node_dirs=(node_dir,))

    def new_group(self, memory_bytes: int, pids_max: int) -> JobCgroup:
        name = f"worker-{next(self._serial)}"
        group = JobCgroup(self.version, tuple(d / name for d in self.node_dirs))
        for directory in group.dirs:
            directory.mkdir()
        try:
            group.set_limits(memory_bytes, pids_max)
        except OSError:
            group.remove()
            raise
        return group

    def close(self) -> None:
        """Remove the node's groups (empty by now); the daemon moves back up on v2."""
        for node_dir in self.node_dirs:
            leaf = node_dir / "daemon"
            with contextlib.suppress(OSError):
                if leaf.is_dir():
                    _write(node_dir.parent / "cgroup.procs", str(os.getpid()))
                    leaf.rmdir()
            with contextlib.suppress(OSError):
                node_dir.rmdir()


@dataclass(frozen=True)
class JobCgroup:
    """One worker's group (one directory per v1 controller, one for v2)."""

    version: int
    dirs: tuple[Path, ...]

    def _dir(self, controller: str) -> Path:
        if self.version == 2:
            return self.dirs[0]
        return self.dirs[_V1_CONTROLLERS.index(controller)]

    def set_limits(self, memory_bytes: int, pids_max: int) -> None:
        if self.version == 2:
            _write(self.dirs[0] / "memory.max", str(memory_bytes))
            with contextlib.suppress(OSError):  # no swap accounting on this host
                _write(self.dirs[0] / "memory.swap.max", "0")
        else:
            memory = self._dir("memory")
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        _write(self._dir("pids") / "pids.max", str(pids_max))

    def procs_files(self) -> list[Path]:
        """The files a process writes its pid to, to join this group (all of them)."""
        return [d / "cgroup.procs" for d in self.dirs]

    def cpu_seconds(self) -> float:
        """CPU time used by every process that was ever in the group."""
        try:
            if self.version == 2:
                return _stat_field(_read(self.dirs[0] / "cpu.stat"), "usage_usec") / 1e6
            return int(_read(self._dir("cpuacct") / "cpuacct.usage")) / 1e9
        except (OSError, ValueError):
            return 0.0

    def oom_kills(self) -> int:
        """How many processes the kernel killed for the group's memory limit."""
        try:
            if self.version == 2:
                return _stat_field(_read(self.dirs[0] / "memory.events"), "oom_kill")
            return _stat_field(_read(self._dir("memory") / "memory.oom_control"), "oom_kill")
        except (OSError, ValueError):
            return 0

    def memory_failures(self) -> int:
        """How often an allocation hit the limit (v1's failcnt, v2's ``max`` events)."""
        try:
            if self.version == 2:
                return _stat_field(_read(self.dirs[0] / "memory.events"), "max")
            return int(_read(self._dir("memory") / "memory.failcnt"))
        except (OSError, ValueError):
            return 0

    def pids(self) -> list[int]:
        try:
            text = _read(self._dir("pids") / "cgroup.procs")
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def kill_all(self) -> None:
        """SIGKILL every member, forks racing the kill included (``pids.max`` bounds them)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        for _ in range(_KILL_ROUNDS):
            members = self.pids()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs:
            for _ in range(100):  # the kernel frees a killed group's members asynchronously
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def join_command(groups: Sequence[Path], argv: Sequence[str]) -> list[str]:
    """``argv`` started inside the groups: a shell writes its pid to each ``cgroup.procs``
    and then becomes ``argv``. Joining before anything runs is what makes every later
    process a member; the daemon (threaded) cannot safely do it between fork and exec.
    """
    script = (
        'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 126; done; '
        'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "sh", *map(str, groups), "--", *argv]
