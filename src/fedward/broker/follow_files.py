"""``fedward broker run`` follows its passwords and ACL files: a change reloads the broker.

Revoking a peer on another host then needs only a copy of the new files (as the upload
server already re-reads its tokens file): no one has to send SIGHUP by hand.

A file counts as changed when its (inode, size, mtime, ctime) stamp changes, so an
atomic replace is seen even within one timestamp tick. A change is acted on once the
stamps stayed the same for ``SETTLE_S``: a plain ``cp`` over the file writes it in
steps, and Mosquitto must not read half of it (if it does anyway, the next change
reloads again). Mosquitto runs as a child of this process, which passes SIGHUP, SIGTERM
and SIGINT on to it and exits with its status; the embedded broker is reloaded in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

log = logging.getLogger("fedward.broker")

POLL_S = 0.5
_PR_SET_PDEATHSIG = 1
SETTLE_S = 0.2

Stamp = tuple[int, int, int, int] | None


def file_stamp(path: Path) -> Stamp:
    try:
        info = path.stat()
    except OSError:  # absent (being replaced) counts as a state of its own
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class FileWatcher:
    """Says when any of ``paths`` changed since the last time it was asked."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self._stamps = self._read()

    def _read(self) -> list[Stamp]:
        return [file_stamp(path) for path in self.paths]

    def changed(self, settle_s: float = SETTLE_S) -> bool:
        """True once after a change, when the files have been still for ``settle_s``."""
        current = self._read()
        if current == self._stamps:
            return False
        while True:
            time.sleep(settle_s)
            settled = self._read()
            if settled == current:
                break
            current = settled
        self._stamps = current
        return True


def run_following_files(
    argv: Sequence[str],
    files: Sequence[Path],
    poll_s: float = POLL_S,
    on_change: Callable[[], object] | None = None,
) -> int:
    """Run ``argv`` (Mosquitto) as a child, SIGHUP it whenever ``files`` change (after
    ``on_change``), and pass our SIGHUP/SIGTERM/SIGINT on; returns the child's exit
    status."""
    watcher = FileWatcher(files)
    # preexec_fn is safe here: the CLI has started no thread yet.
    child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {
        s: signal.signal(s, forward) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
    }
    try:
        while True:
            try:
                return child.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                pass
            if watcher.changed():
                log.warning("%s changed: the broker reloads them", _names(files))
                if on_change is not None:
                    on_change()
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGHUP)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if child.poll() is None:  # we are leaving on an exception: do not orphan it
            child.terminate()
            child.wait()


async def follow_files(
    files: Sequence[Path], reload: Callable[[], None], poll_s: float = POLL_S
) -> None:
    """For the embedded broker: call ``reload`` on its loop whenever ``files`` change."""
    watcher = FileWatcher(files)
    while True:
        await asyncio.sleep(poll_s)
        if await asyncio.to_thread(watcher.changed):
            log.warning("%s changed: the broker reloads them", _names(files))
            reload()


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when this process dies, even by SIGKILL, so that a
    killed ``fedward broker run`` leaves no Mosquitto behind holding the port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _names(files: Sequence[Path]) -> str:
    return " or ".join(os.fspath(Path(f).name) for f in files)
