"""Which blobs the upload server may delete, and collecting them (``fedward uploads gc``).

Without this, every round adds its global parameters and every node's update to the
store for good: a 100M-parameter, 10-node experiment wrote 4.4 GB per round. Two rules:

- **Served.** A parameters file is a message for one round: once every reader other
  than its uploader has fetched it, it is deleted ``keep_fetched_s`` later. A reader
  that downloads to a file has fetched it once it *confirms* the file kept (``app``:
  ``POST /blobs/<id>/kept`` after its rename), so a reader killed between the last byte
  and keeping the file finds the blob again; nodes and the researcher keep what they
  confirmed for as long as they need it (a researcher keeps its round's downloads until
  the round's checkpoint, ``researcher.round_scratch``). The short delay is for readers
  that do not confirm (a download into memory is counted at its last byte): room for
  one whose connection broke there to fetch it again. A new upload of the same content
  starts a new use, so a resumed experiment that sends the same parameters again is
  served again.
- **Idle.** Any blob nobody uploaded or fetched for ``keep_idle_s`` is deleted. This is
  how plans go (nodes read a plan again after a restart, so it is kept while in use)
  and parameters some reader never fetched (a node that went offline).

Checkpoints are the researcher's, on its own disk, with their own policy
(``Experiment(keep_checkpoints=...)``); nothing here touches them.

``BackgroundCollector`` runs ``collect`` every ``interval_s`` inside the server; the
CLI runs it once. Deciding and deleting happen under the lock uploads and fetches take
(``DiskBlobSpace.delete_if``), so a blob is never deleted between a reader's check and
its fetch, nor while an upload of the same content is being recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from fedward.errors import ConfigError
from fedward.periodic import PeriodicTask
from fedward.uploads.blob_space import BlobRecord, DiskBlobSpace

log = logging.getLogger(__name__)

# Readers confirm what they kept, so the delay after the last fetch only covers one that
# does not and lost its connection at the last byte. Rounds take a few seconds: every
# second a spent blob stays is a fraction of a round's bytes on disk (retention.md).
DEFAULT_KEEP_FETCHED_S = 2.0
DEFAULT_KEEP_IDLE_S = 7 * 24 * 3600.0
DEFAULT_INTERVAL_S = 1.0


@dataclass(frozen=True)
class RetentionPolicy:
    keep_fetched_s: float = DEFAULT_KEEP_FETCHED_S
    keep_idle_s: float = DEFAULT_KEEP_IDLE_S

    def __post_init__(self) -> None:
        if self.keep_fetched_s < 0 or self.keep_idle_s < 0:
            raise ConfigError("retention times must not be negative")

    def wanted(self, record: BlobRecord | None, stored_mtime: float, now: float) -> bool:
        """Whether a blob with this sidecar (None: it has none) must be kept at ``now``."""
        last_used = max(record.last_used if record else 0.0, stored_mtime)
        if now - last_used >= self.keep_idle_s:
            return False
        if record is None or record.kind != "parameters" or record.spent_at is None:
            return True
        return now - record.spent_at < self.keep_fetched_s


@dataclass(frozen=True)
class Collected:
    blobs: int
    bytes: int
    kept: int


def collect(
    space: DiskBlobSpace,
    policy: RetentionPolicy,
    now: float | None = None,
    *,
    dry_run: bool = False,
) -> Collected:
    """Delete (or with ``dry_run`` only count) the blobs ``policy`` no longer wants."""
    now = time.time() if now is None else now
    deleted = freed = kept = 0
    present = list(space.blob_ids())
    if not dry_run:  # blobs another process deleted no longer count against the quotas
        space.forget_deleted(present)
    for blob_id in present:
        stored = space.stored_at(blob_id)
        if stored is None:
            continue

        def still_wanted(record: BlobRecord | None, mtime: float = stored[1]) -> bool:
            return policy.wanted(record, mtime, now)

        if dry_run:
            if still_wanted(space.record_of(blob_id)):
                kept += 1
            else:
                deleted, freed = deleted + 1, freed + stored[0]
            continue
        size = space.delete_if(blob_id, still_wanted)
        if size or space.stored_at(blob_id) is None:
            deleted, freed = deleted + 1, freed + size
        else:
            kept += 1
    return Collected(deleted, freed, kept)


class BackgroundCollector(PeriodicTask):
    """``collect`` every ``interval_s`` on a thread of the server; logs what it freed."""

    def __init__(
        self,
        space: DiskBlobSpace,
        policy: RetentionPolicy,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if interval_s <= 0:
            raise ConfigError("the collection interval must be positive")

        def collect_once() -> None:
            result = collect(space, policy)
            if result.blobs:
                log.info("deleted %d blob(s), %d bytes", result.blobs, result.bytes)

        super().__init__("uploads-gc", interval_s, collect_once)
