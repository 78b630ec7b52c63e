"""How much the upload server keeps stored: a quota per uploader and one in all.

Any peer with a token (a node, a researcher) may upload, and a blob naming readers that
never fetch it stays until retention's idle time (7 days). Without a bound, one peer
could fill the disk and fail every other site's rounds. Two quotas, in bytes:

- **per peer** (``--peer-quota-mb``, 8 GiB): what one peer keeps stored, the blobs it
  uploaded that retention has not deleted plus its uploads in progress. A round holds a
  peer's update (or, for a researcher, the global parameters) for a few seconds after
  its readers fetched it; 8 GiB keeps a 1 GB model (250M float32) with its extras
  (optimizer state, SCAFFOLD's control variates) several times over, so a peer running
  a few experiments at once is not refused while one that floods is stopped early.
- **total** (``--total-quota-mb``): every peer together. Its default is what the store
  holds at start plus 90% of the free space of its file system then: the server stops
  short of a full disk, leaving the rest for its own sidecars, the logs and whatever
  else shares that disk. It is fixed at start, not read from the disk on every upload,
  so that another program filling the disk cannot make uploads fail at random; a
  server whose disk was nearly full at start should be given a figure.

A blob counts its full size against each of its uploaders (peers that send the same
content each pay for it; a peer sending again content it already uploaded pays nothing)
and once against the total. An upload reserves its declared length (Content-Length)
before a byte is written; the reservation ends when the upload is stored (its blob is
then charged) or fails. Nothing here locks: ``DiskBlobSpace`` calls it under the lock
every upload, commit and deletion takes, so a check and its reservation are one step.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fedward.errors import ConfigError, QuotaExceeded

MIB = 1024 * 1024
DEFAULT_PEER_QUOTA_MB = 8192
# The share of the free space at start that the default total quota lets uploads take.
DEFAULT_FREE_SHARE = 0.9


@dataclass(frozen=True)
class StorageQuotas:
    """``total_bytes`` None: ``default_total_bytes`` once the store was counted."""

    peer_bytes: int = DEFAULT_PEER_QUOTA_MB * MIB
    total_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.peer_bytes < 1 or (self.total_bytes is not None and self.total_bytes < 1):
            raise ConfigError("storage quotas must be positive")


def default_total_bytes(data_dir: Path, stored_bytes: int) -> int:
    """What is stored plus ``DEFAULT_FREE_SHARE`` of the free space under ``data_dir``."""
    return stored_bytes + int(shutil.disk_usage(data_dir).free * DEFAULT_FREE_SHARE)


@dataclass(frozen=True)
class Charge:
    """What one stored blob counts: ``content_bytes`` against the total (its file on
    disk), ``size`` against each of ``uploaders`` (its sidecar's size)."""

    content_bytes: int
    size: int
    uploaders: frozenset[str]


@dataclass(frozen=True, eq=False)
class Reservation:
    """An upload in progress: what it will count once stored. (Compared by identity:
    two uploads of the same size by one peer are two reservations.)"""

    peer: str
    peer_bytes: int
    total_bytes: int


class QuotaLedger:
    """Bytes stored and reserved, per peer and in all. Not thread-safe: its owner calls
    it under one lock."""

    def __init__(self, peer_limit: int, total_limit: int, charges: Iterable[tuple[str, Charge]]):
        self.peer_limit = peer_limit
        self.total_limit = total_limit
        self._charges: dict[str, Charge] = {}
        self._by_peer: dict[str, int] = {}
        self._total = 0
        self._reserved_by_peer: dict[str, int] = {}
        self._reserved_total = 0
        for blob_id, charge in charges:
            self.charge(blob_id, charge)

    @property
    def stored_bytes(self) -> int:
        return self._total

    def stored_by(self, peer: str) -> int:
        return self._by_peer.get(peer, 0)

    def reserved_by(self, peer: str) -> int:
        return self._reserved_by_peer.get(peer, 0)

    @property
    def reserved_bytes(self) -> int:
        return self._reserved_total

    def charged_to(self, blob_id: str, peer: str) -> bool:
        charge = self._charges.get(blob_id)
        return charge is not None and peer in charge.uploaders

    def charge(self, blob_id: str, charge: Charge) -> None:
        """The blob is stored as ``charge`` says (replacing what it counted before)."""
        self.release(blob_id)
        self._charges[blob_id] = charge
        self._total += charge.content_bytes
        for peer in charge.uploaders:
            self._by_peer[peer] = self._by_peer.get(peer, 0) + charge.size

    def release(self, blob_id: str) -> None:
        """The blob is gone; nothing if it counted nothing."""
        charge = self._charges.pop(blob_id, None)
        if charge is None:
            return
        self._total -= charge.content_bytes
        for peer in charge.uploaders:
            left = self._by_peer[peer] - charge.size
            if left:
                self._by_peer[peer] = left
            else:
                del self._by_peer[peer]

    def charged_ids(self) -> set[str]:
        return set(self._charges)

    def reserve(self, peer: str, *, peer_bytes: int, total_bytes: int) -> Reservation:
        """Reserve an upload's bytes, or QuotaExceeded if either quota would be passed.
        An upload that adds nothing (content this peer already stores) always passes,
        even past a quota lowered since."""
        if peer_bytes:
            held = self.stored_by(peer) + self.reserved_by(peer)
            if held + peer_bytes > self.peer_limit:
                raise QuotaExceeded(
                    f"this upload of {peer_bytes} bytes would take what peer {peer} keeps on "
                    f"the upload server to {held + peer_bytes} bytes, past its quota of "
                    f"{_in_mib(self.peer_limit)} per peer; raise --peer-quota-mb on the "
                    "upload server, or wait until retention deletes blobs that were fetched"
                )
        if total_bytes and self._total + self._reserved_total + total_bytes > self.total_limit:
            # The server's usage is not told to the peer: only the quota it is past.
            raise QuotaExceeded(
                f"this upload of {total_bytes} bytes would take the upload server's storage "
                f"past its total quota of {_in_mib(self.total_limit)}; raise --total-quota-mb "
                "on the upload server, or wait until retention deletes blobs that were fetched"
            )
        self._reserved_by_peer[peer] = self.reserved_by(peer) + peer_bytes
        self._reserved_total += total_bytes
        return Reservation(peer, peer_bytes, total_bytes)

    def cancel(self, reservation: Reservation) -> None:
        """The upload ended (stored, or failed): its bytes are no longer reserved."""
        left = self.reserved_by(reservation.peer) - reservation.peer_bytes
        if left:
            self._reserved_by_peer[reservation.peer] = left
        else:
            self._reserved_by_peer.pop(reservation.peer, None)
        self._reserved_total -= reservation.total_bytes


def _in_mib(size: int) -> str:
    return f"{size} bytes ({size / MIB:g} MiB)"
