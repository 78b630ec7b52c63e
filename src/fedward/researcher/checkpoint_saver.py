"""Checkpoints finished beside the next round instead of before it.

Saving a round's checkpoint is two halves (``checkpoint.stage_checkpoint`` and
``finish_checkpoint``). The first writes and hashes the parameters, on the round's
thread: the next round uploads that very file (through a hard link that the rename into
place does not move). The second, which is mostly waiting for the disk (fsyncs, the
aggregator's tensors, ``state.json``, the rename, removing old rounds, then the finished
round's journal), runs on a thread while the next round starts and uploads.

The order that makes a crash safe is kept: the next round records its start in its
journal, and so asks any node, only once the checkpoint before it is complete
(``RoundJournal.barrier`` is ``wait``). Until then a crash leaves the previous
checkpoint and the finished round's journal, and the resumed experiment finishes that
round again from its journal, as it would have before.

``wait`` also runs before ``Experiment.last_checkpoint`` is read, before ``close``
returns, before a secure round (which keeps no journal) and before any checkpoint is
loaded in this process, so nothing outside the round loop sees a checkpoint missing.
A failed save is raised there.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fedward.protocol.params_writer import ParamsFile
from fedward.researcher.checkpoint import finish_checkpoint, stage_checkpoint

log = logging.getLogger("fedward.researcher")

_savers: weakref.WeakSet[CheckpointSaver] = weakref.WeakSet()


def wait_for_all_checkpoints() -> None:
    """Every checkpoint this process is still writing, complete (before one is loaded)."""
    for saver in list(_savers):
        saver.wait()


class CheckpointSaver:
    def __init__(self) -> None:
        self.last: Path | None = None  # the newest complete checkpoint
        self._rounds_staged = -1
        self._upload: ParamsFile | None = None
        # The newest complete checkpoint's parameters where the rename put them, and its
        # round: what a round after a synchronous save uploads (no staged link then), known
        # without reading its state.json, which holds the whole history.
        self._finished: tuple[int, ParamsFile] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        _savers.add(self)

    def save(
        self,
        directory: Path,
        rounds_done: int,
        params: Mapping[str, np.ndarray],
        aggregator_tensors: Mapping[str, Mapping[str, np.ndarray]],
        state: Mapping[str, Any],
        keep: int | None,
        then: Callable[[], None],
        *,
        background: bool,
    ) -> None:
        """Write the parameters now and finish the checkpoint, on a thread if
        ``background`` (else here, raising what failed); ``then`` runs once it is complete
        (the round's journal is removed there). In the background the arrays given must
        not change afterwards: the round's new global parameters and a snapshot state."""
        self.wait()
        staged = stage_checkpoint(directory, rounds_done, params, link_for_upload=background)
        self._rounds_staged, self._upload = rounds_done, staged.upload

        def finish() -> None:
            try:
                final = finish_checkpoint(staged, aggregator_tensors, state, keep)
                moved = replace(staged.params, path=final / staged.params.path.name)
                self._finished, self.last = (rounds_done, moved), final
                then()
            except BaseException as exc:  # raised again by ``wait``
                log.error("the checkpoint of round %d was not saved: %s", rounds_done, exc)
                self._error = exc

        if not background:
            finish()
            self.wait()
            return
        self._thread = threading.Thread(target=finish, name="fedward-checkpoint")
        self._thread.start()

    def global_file(self, rounds_done: int) -> ParamsFile | None:
        """The parameters of the checkpoint after ``rounds_done`` rounds, to upload as they
        are: staged (being finished in the background) or complete (None: not saved here,
        or changed since)."""
        upload = self._upload if rounds_done == self._rounds_staged else None
        finished = self._finished
        if upload is None and finished is not None and finished[0] == rounds_done:
            upload = finished[1]
        if upload is None or not upload.unchanged():
            return None
        return upload

    def wait(self) -> None:
        """The checkpoint being written, complete; its error, if it failed."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error
