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

Every second, that is a look at every blob: 5,000 blobs cost 0.2 to 0.45 s a sweep
(and 5,000 turns of the store's lock) when each sidecar was read and parsed, about
0.05 s with what follows (2 cores, ext4). The background collector remembers, per
blob, the earliest time the policy could delete it (``RetentionMemory``) and skips,
with one ``stat`` of the sidecar and no lock, a blob whose sidecar is the one it read
and that is not due yet. Every change to a blob's use rewrites its sidecar (a new file,
renamed over the old one), so a changed sidecar is read again; a blob that is due goes
through the same locked check as without memory, which alone decides. Remembering can
only make a deletion wait for that check, never make one happen that the policy would
not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
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

    def due_at(self, record: BlobRecord | None, stored_mtime: float) -> float:
        """The earliest time ``wanted`` may say no for this sidecar and content: before
        it, the blob is wanted whatever the time (``RetentionMemory`` skips it)."""
        last_used = max(record.last_used if record else 0.0, stored_mtime)
        due = last_used + self.keep_idle_s
        if record is not None and record.kind == "parameters" and record.spent_at is not None:
            due = min(due, record.spent_at + self.keep_fetched_s)
        return due


# A sidecar rewritten within the same tick of the file system's clock can keep its mtime;
# one written this recently before it was read is read again at the next sweep.
_SETTLE_S = 1.0
# Float sums may land a hair past the boundary ``wanted`` draws: a blob this close to its
# due time goes through the full check.
_DUE_MARGIN_S = 0.001


class RetentionMemory:
    """What the background collector knows of each blob between sweeps: the stamp of the
    sidecar it read (inode, mtime, size) and when that sidecar makes the blob due."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self._policy = policy
        self._due: dict[str, tuple[tuple[int, int, int], float]] = {}

    def not_due(self, space: DiskBlobSpace, blob_id: str, now: float) -> bool:
        """True if the blob is surely still wanted at ``now``: its sidecar is the one last
        read and its due time is ahead. Otherwise reads the sidecar again, remembers it,
        and says whether that one is not due."""
        stamp = space.record_stamp(blob_id)
        if stamp is None:  # no sidecar: the full check decides, every time
            self._due.pop(blob_id, None)
            return False
        known = self._due.get(blob_id)
        if known is not None and known[0] == stamp:
            return now < known[1] - _DUE_MARGIN_S
        stored = space.stored_at(blob_id)
        if stored is None:
            self._due.pop(blob_id, None)
            return False
        # The stamp is taken before the read: a sidecar written after it has another.
        due = self._policy.due_at(space.record_of(blob_id), stored[1])
        if stamp[1] / 1e9 > time.time() - _SETTLE_S:
            self._due.pop(blob_id, None)
        else:
            self._due[blob_id] = (stamp, due)
        return now < due - _DUE_MARGIN_S

    def forget_all_but(self, present: Iterable[str]) -> None:
        """Drop what is remembered of blobs no longer stored."""
        keep = set(present)
        for blob_id in [b for b in self._due if b not in keep]:
            del self._due[blob_id]

    def __len__(self) -> int:
        return len(self._due)


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
    memory: RetentionMemory | None = None,
) -> Collected:
    """Delete (or with ``dry_run`` only count) the blobs ``policy`` no longer wants.
    ``memory``: skip blobs it knows are not due (the background collector's)."""
    now = time.time() if now is None else now
    deleted = freed = kept = 0
    present = list(space.blob_ids())
    if not dry_run:  # blobs another process deleted no longer count against the quotas
        space.forget_deleted(present)
    if memory is not None:
        memory.forget_all_but(present)
    for blob_id in present:
        if memory is not None and memory.not_due(space, blob_id, now):
            kept += 1
            continue
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

        memory = RetentionMemory(policy)

        def collect_once() -> None:
            result = collect(space, policy, memory=memory)
            if result.blobs:
                log.info("deleted %d blob(s), %d bytes", result.blobs, result.bytes)

        super().__init__("uploads-gc", interval_s, collect_once)
