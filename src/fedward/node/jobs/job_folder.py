"""An experiment's folder on the node, split by who may write where.

    jobs/<experiment>/          the daemon's (0700, or 0711 for a ``nobody`` worker)
        inputs/                 the daemon writes: canonical plan, parameters, extras;
                                the worker only reads (read-only mount, Landlock rule,
                                or file modes)
        work/                   the worker's only writable place: HOME, TMPDIR, results
        outputs/                the daemon's private copies of results, never shown to
                                the worker

The daemon takes nothing from ``work/`` by a name the worker chose: a result is opened
under a fixed name (``result_name``), relative to the folder's descriptor, without
following links, only if it is a regular file with one link and within its size cap,
and copied to ``outputs/`` — checked as it is copied (``result_copy``), so the worker
cannot change it between the check and the upload.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from fedward.errors import JobError
from fedward.node.jobs.result_copy import copy_checked
from fedward.node.jobs.results import ResultCheck
from fedward.protocol.params_writer import ParamsFile

_OPEN_RESULT = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_WORK_ENTRIES = 100_000


def result_name(job_id: str, part: str = "params") -> str:
    """The fixed name of a job's result file in ``work/`` (``part``: params or an extra)."""
    return f"{job_id}.{part}.safetensors"


@dataclass(frozen=True)
class JobFolder:
    root: Path

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @classmethod
    def create(
        cls, jobs_dir: Path, experiment_id: str, worker_user: tuple[int, int] | None = None
    ) -> JobFolder:
        """Make (or reuse) the folder; ``worker_user`` owns ``work/`` when workers run as
        another user, who may then pass through (not list) the folders above."""
        jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = cls(jobs_dir / experiment_id)
        folder.root.mkdir(exist_ok=True, mode=0o700)
        for path in (folder.inputs, folder.outputs, folder.work):
            path.mkdir(exist_ok=True, mode=0o700)
            if path.is_symlink() or not path.is_dir():
                raise JobError(f"job folder {path.name} of {experiment_id} is not a folder")
        if worker_user is not None:
            os.chown(folder.work, *worker_user)
            folder.inputs.chmod(0o755)
            for parent in (folder.root, jobs_dir, jobs_dir.parent):
                mode = parent.stat().st_mode & 0o777
                if mode & 0o001 == 0:
                    parent.chmod(mode | 0o001)
        return folder

    def collect(self, name: str, max_bytes: int, what: str, check: ResultCheck) -> ParamsFile:
        """Copy the worker's result ``name`` out of ``work/`` into ``outputs/`` and remove
        it from ``work/``; a ``JobError`` (naming ``what``) for anything but a plain file
        of at most ``max_bytes``, or one that fails ``check``. The copy is hashed on the
        way: its sha256 is its blob id while the daemon leaves it unchanged."""
        private = self.outputs / name
        folder_fd = os.open(self.work, _OPEN_FOLDER)
        try:
            try:
                source = os.open(name, _OPEN_RESULT, dir_fd=folder_fd)
            except FileNotFoundError:
                raise JobError(f"the job wrote no {what}") from None
            except OSError as exc:  # ELOOP: a symbolic link
                raise JobError(f"the job's {what} is not a regular file") from exc
            try:
                info = os.fstat(source)
                if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                    raise JobError(f"the job's {what} is not a regular file")
                if info.st_size > max_bytes:
                    raise JobError(f"the job's {what} is larger than {max_bytes} bytes")
                sha256 = copy_checked(source, info.st_size, private, check)
            finally:
                os.close(source)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=folder_fd)
        finally:
            os.close(folder_fd)
        copied = private.stat()
        return ParamsFile(private, sha256, copied.st_size, copied.st_mtime_ns)

    def discard(self, *names: str) -> None:
        """Remove results of a job that ended badly, from ``work/`` and ``outputs/``."""
        with contextlib.suppress(OSError):
            folder_fd = os.open(self.work, _OPEN_FOLDER)
            try:
                for name in names:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=folder_fd)
            finally:
                os.close(folder_fd)
        for name in names:
            (self.outputs / name).unlink(missing_ok=True)

    def clear_work(self) -> None:
        """Empty ``work/`` after a failed job (its worker is gone; a new one starts clean)."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(exist_ok=True, mode=0o700)

    def work_bytes(self) -> int:
        """Disk used under ``work/`` (allocated blocks, so sparse files count what they
        hold); more entries than ``MAX_WORK_ENTRIES`` count as over any limit."""
        total = 0
        entries = 0
        pending = [self.work]
        while pending:
            try:
                scan = os.scandir(pending.pop())
            except OSError:
                continue
            with scan:
                for entry in scan:
                    entries += 1
                    if entries > MAX_WORK_ENTRIES:
                        return 1 << 62
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(Path(entry.path))
        return total

    def remove(self) -> None:
        # rmtree works through descriptors on Linux: a link planted in work/ is removed,
        # never followed.
        shutil.rmtree(self.root, ignore_errors=True)
