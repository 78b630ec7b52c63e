"""Where a round keeps what it uploads and downloads.

A round whose experiment keeps checkpoints has a journal (``round_journal``); its
downloads stay beside it, in ``RoundJournal.updates_dir``, until the round's checkpoint
is complete and the journal goes. A researcher that crashed before then and resumes
folds the same updates again from there, instead of downloading them from an upload
server that deletes a blob soon after its readers fetched it (``uploads.retention``).
Without a journal, a temporary folder serves while the round runs.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fedward.researcher.round_journal import RoundJournal
from fedward.transport.blobs import BlobStore, file_sha256


@contextlib.contextmanager
def round_scratch(journal: RoundJournal | None) -> Iterator[Path]:
    """The round's folder for what it uploads and downloads: its journal's, kept until
    the round's checkpoint is complete, or a temporary one."""
    if journal is None:
        with tempfile.TemporaryDirectory() as scratch:
            yield Path(scratch)
        return
    journal.updates_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    yield journal.updates_dir


def holds_blob(path: Path, blob_id: str, cap: int) -> bool:
    """Whether ``path`` is a download of ``blob_id`` already (a resumed round's): its
    hash is checked again, since scratch files are not fsynced."""
    try:
        if not path.is_file() or path.stat().st_size > cap:
            return False
        return file_sha256(path) == blob_id
    except OSError:
        return False


def fetch_once(blobs: BlobStore, blob_id: str, path: Path, cap: int, *, reuse: bool) -> None:
    """Download ``blob_id`` to ``path`` with its cap, unless ``reuse`` and a resumed
    round's download of it is there already."""
    if reuse and holds_blob(path, blob_id, cap):
        blobs.confirm_kept(blob_id)  # in case the crash came before get_file confirmed it
        return
    blobs.get_file(blob_id, path, max_bytes=cap, durable=False)
