"""An experiment's folder on the node, split by who may write where.

    jobs/<experiment>/          the daemon's (0700, or 0711 for a ``nobody`` worker)
        inputs/                 the daemon writes: canonical plan, parameters, extras;
                                the worker only reads (read-only mount, Landlock rule,
                                or file modes)
        work/                   the worker's only writable place: HOME, TMPDIR
        outputs/                the daemon's own files made from results (an encoded or
                                noised update), never shown to the worker

The daemon reads nothing from ``work/``: a result comes as sealed memory files passed
with the result report (``sealed_results``), so no name the worker can reach is ever
opened, and nothing there can change the bytes the daemon checked.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from fedward.errors import JobError

MAX_WORK_ENTRIES = 100_000


def result_name(job_id: str, part: str) -> str:
    """The name of a file the daemon makes from a job's result in ``outputs/``."""
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

    def discard(self, *names: str) -> None:
        """Remove files made from a job's result from ``outputs/``."""
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
