"""An upload that its readers can start downloading before it ends.

A round's parameters cross the upload server twice per hop: the sender uploads them, the
receiver downloads them. Done in series, each hop costs both transfers. The upload
server streams an upload in progress to its readers (``uploads.upload_streams``), so a
sender that announces the blob as soon as the server has *registered* its upload turns
the two copies into one pipe. ``UploadInFlight`` runs ``put_file`` on a thread of its
own and returns once that point is reached (``on_accepted``); ``wait`` then joins it.

An announced upload can still fail (the server or the link goes down). Its readers then
see a cut download, never wrong bytes, and keep trying for a while (``HttpBlobStore``
tries a NotFound again after a cut), so an upload sent again meanwhile, by the retrying
sender or by one resumed after a crash, still reaches them. The sender learns of the
failure from ``wait``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

from fedward.transport.blobs import BlobStore


class UploadInFlight:
    def __init__(self, blobs: BlobStore, path: Path, readers: Sequence[str], blob_id: str) -> None:
        """Start uploading ``path`` (whose sha256 is ``blob_id``); returns once its
        readers may GET it, and raises what failed if it failed before that."""
        self.blob_id = blob_id
        self._accepted = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._upload,
            args=(blobs, Path(path), list(readers)),
            name="fedward-upload",
            daemon=True,
        )
        self._thread.start()
        self._accepted.wait()
        if self._error is not None:  # failed before its readers could start
            self.wait()

    def _upload(self, blobs: BlobStore, path: Path, readers: list[str]) -> None:
        try:
            blobs.put_file(path, readers, blob_id=self.blob_id, on_accepted=self._accepted.set)
        except BaseException as exc:  # handed to whoever waits, on their thread
            self._error = exc
        finally:
            self._accepted.set()

    def wait(self) -> None:
        """Until the upload is stored; raises what made it fail."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> UploadInFlight:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """Joins the upload (its file may go once this returns); raises its failure
        unless something else is raised already."""
        if exc_type is None:
            self.wait()
        else:
            self._thread.join()


class StreamedPuts:
    """``put_bytes`` that returns once the upload is registered, as ``UploadInFlight``
    does for a file: the bytes are written to ``scratch`` and uploaded from there on a
    thread, joined by ``uploads`` (whose exit must come before ``scratch`` goes). For what
    an update codec uploads (``researcher.update_codecs``), which is made in memory."""

    def __init__(self, blobs: BlobStore, scratch: Path, uploads: contextlib.ExitStack) -> None:
        self._blobs, self._scratch, self._uploads = blobs, Path(scratch), uploads

    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str:
        blob_id = hashlib.sha256(data).hexdigest()
        path = self._scratch / f"upload-{blob_id}.bin"
        path.write_bytes(data)
        upload = UploadInFlight(self._blobs, path, readers, blob_id)
        return self._uploads.enter_context(upload).blob_id
