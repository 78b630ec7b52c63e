"""A job's update, announced while it is still being uploaded.

The node's reply names the blobs of its update, and the researcher downloads them as
soon as it reads the reply. A reply sent only once the uploads had ended made every
update cross the upload server as two copies in series: the node's PUT, then the
researcher's GET. Here the uploads start first (``UploadInFlight``); once the server has
registered them, the reply goes out and the researcher's GETs stream each blob as it
arrives (``uploads.upload_streams``), while the node waits for its uploads to end.

An announced upload can still fail, after the node's own retries. The researcher then
sees a cut download and then a missing blob, and counts the node as failed for that
round, as it does for any update it cannot fetch. The node records the job as failed
and forgets its outcome (``RoundJobs.forget``), so a repeated request from a researcher
that had not recorded the reply runs the job again instead of being told of a blob that
never arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedward.core.messages import ErrorReply, Reply
from fedward.transport.blobs import BlobStore, file_sha256
from fedward.transport.upload_in_flight import UploadInFlight

log = logging.getLogger("fedward.node")


@dataclass(frozen=True)
class AnnouncedReply:
    """A reply to send at once, and ``finish``, to call once it is sent: it waits for
    the work the reply announced (uploads in flight) and cleans up. ``finish`` never
    raises; it returns the reply that holds after all (an ``ErrorReply`` when what was
    announced failed), or None when the first one stands."""

    reply: Reply
    finish: Callable[[], ErrorReply | None]


class UpdateUploads:
    """The uploads of one job's update and extras, each readable by the researcher as
    soon as ``start`` returns."""

    def __init__(self, blobs: BlobStore, reader: str) -> None:
        self._blobs = blobs
        self._reader = reader
        self._uploads: list[UploadInFlight] = []

    def start(self, path: Path, blob_id: str | None) -> str:
        """Begin uploading ``path`` (``blob_id``: its sha256 if known); returns its blob
        id once the upload server has registered it. Raises what failed before then."""
        known = blob_id if blob_id is not None else file_sha256(path)
        upload = UploadInFlight(self._blobs, path, [self._reader], known)
        self._uploads.append(upload)
        return known

    def wait(self) -> None:
        """Until every upload has ended; raises the first failure, after all ended (their
        files may then go)."""
        failure: BaseException | None = None
        for upload in self._uploads:
            try:
                upload.wait()
            except BaseException as exc:  # every upload is joined before any is reported
                failure = failure or exc
        if failure is not None:
            raise failure

    def abandon(self) -> None:
        """Join every upload; how they ended is logged, not raised: the job failed
        anyway, and its own error is the one reported."""
        try:
            self.wait()
        except Exception as exc:
            log.debug("an upload of a job that failed ended badly too: %s", exc)
