"""An exclusive ``fcntl`` lock for read-modify-write of a shared file.

Atomic writes (:mod:`fedward.storage.atomic`) keep readers from seeing half a file; this
lock keeps two writers (threads or processes) from both reading the old content and
one of them losing its change. The lock lives on a separate file, so replacing the
data file does not drop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if needed) for the ``with`` body."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
