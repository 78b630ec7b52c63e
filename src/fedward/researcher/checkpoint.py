"""Checkpoints: an experiment saved after every round, atomically, and found again.

Layout, under the researcher's state folder::

    experiments/<experiment id>/round-NNNN/    NNNN = rounds completed (0002 after round 2)
        params.safetensors                     the global parameters after that round
        aggregator/<group>.safetensors         aggregator / server-optimiser tensors
        state.json                             settings, aggregator and selection state,
                                               selection RNG state, history
                                               (spliced in encoded: ``history_log``)

A checkpoint is written into a hidden ``.round-NNNN.partial-*`` folder, every file
fsynced, then renamed into place (one atomic rename) and the parent folder fsynced: a
crash leaves either the complete checkpoint or none, and ``latest`` only ever sees
complete ones. Loading reads safetensors and JSON only, never pickle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedward.core.ids import validate_id, validate_sha256
from fedward.core.params import Params
from fedward.errors import NotFound, ValidationError
from fedward.protocol.params_wire import load_params, params_to_bytes
from fedward.protocol.params_writer import ParamsFile
from fedward.researcher.history_log import dumps_state
from fedward.storage.atomic import fsync_dir, fsync_path

FORMAT = "fedward-experiment-checkpoint"
VERSION = 1
_ROUND_DIR = re.compile(r"^round-(\d{4,})$")
# Hard links to the newest checkpoint's parameters, for the next round's upload.
_UPLOAD_PREFIX = ".global-"


@dataclass
class Checkpoint:
    path: Path
    rounds_done: int
    params: Params
    aggregator_tensors: dict[str, Params]
    state: dict[str, Any]


def experiment_dir(state_dir: Path, experiment_id: str) -> Path:
    return Path(state_dir) / "experiments" / validate_id(experiment_id, kind="experiment id")


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save_checkpoint(
    directory: Path,
    rounds_done: int,
    params: Mapping[str, np.ndarray],
    aggregator_tensors: Mapping[str, Mapping[str, np.ndarray]],
    state: Mapping[str, Any],
    keep: int | None = None,
) -> Path:
    """Write ``round-NNNN`` under the experiment ``directory``; keep the last ``keep`` ones."""
    staged = stage_checkpoint(directory, rounds_done, params, link_for_upload=False)
    return finish_checkpoint(staged, aggregator_tensors, state, keep)


@dataclass(frozen=True)
class StagedCheckpoint:
    """A checkpoint whose parameters are written (not yet fsynced) in its partial folder."""

    directory: Path
    final: Path
    partial: Path
    params: ParamsFile
    #: The same file under a name outside the partial folder, which the rename into place
    #: does not move: the next round uploads it while the checkpoint is finished. None
    #: where the file system has no hard links (the round then writes its own copy).
    upload: ParamsFile | None


def stage_checkpoint(
    directory: Path, rounds_done: int, params: Mapping[str, np.ndarray], *, link_for_upload: bool
) -> StagedCheckpoint:
    """The first half of ``save_checkpoint``: the parameters written and hashed (and,
    ``link_for_upload``, linked for the next round's upload)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"round-{rounds_done:04d}"
    partial = directory / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "aggregator").mkdir(parents=True)
    try:
        written = ParamsFile.write(params, partial / "params.safetensors", durable=False)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for stale in directory.glob(f"{_UPLOAD_PREFIX}*.safetensors"):
        stale.unlink(missing_ok=True)
    upload: ParamsFile | None = None
    if link_for_upload:
        link = directory / f"{_UPLOAD_PREFIX}{rounds_done:04d}.safetensors"
        try:
            os.link(written.path, link)
            upload = replace(written, path=link)
        except OSError:
            pass  # no hard links here: the round writes its own copy
    return StagedCheckpoint(directory, final, partial, written, upload)


def finish_checkpoint(
    staged: StagedCheckpoint,
    aggregator_tensors: Mapping[str, Mapping[str, np.ndarray]],
    state: Mapping[str, Any],
    keep: int | None = None,
) -> Path:
    """The second half: every file fsynced, the folder renamed into place, old rounds
    beyond ``keep`` removed. Returns the checkpoint's folder."""
    directory, final, partial = staged.directory, staged.final, staged.partial
    try:
        fsync_path(staged.params.path)
        for group, tensors in aggregator_tensors.items():
            name = validate_id(group, kind="aggregator state group")
            _write_synced(partial / "aggregator" / f"{name}.safetensors", params_to_bytes(tensors))
        document = {
            "format": FORMAT,
            "version": VERSION,
            "rounds_done": int(final.name.removeprefix("round-")),
            "params_sha256": staged.params.sha256,
            **state,
        }
        _write_synced(partial / "state.json", dumps_state(document).encode("utf-8"))
        fsync_dir(partial / "aggregator")
        fsync_dir(partial)
        if final.exists():  # the same round saved again (a rerun): replace it whole
            stale = directory / f".{final.name}.stale-{os.getpid()}"
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        partial.rename(final)
        fsync_dir(directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if staged.upload is not None:
            staged.upload.path.unlink(missing_ok=True)
        raise
    if keep is not None:
        for old in round_dirs(directory)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_params(path: Path) -> ParamsFile | None:
    """The parameters file of the checkpoint at ``path`` with its recorded sha256, for the
    next round to upload as it is; None for a checkpoint saved without one."""
    try:
        document = json.loads((path / "state.json").read_text(encoding="utf-8"))
        sha256 = validate_sha256(str(document["params_sha256"]))
        info = (path / "params.safetensors").stat()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ParamsFile(path / "params.safetensors", sha256, info.st_size, info.st_mtime_ns)


def round_dirs(directory: Path) -> list[Path]:
    """Complete checkpoints of one experiment, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := _ROUND_DIR.match(p.name)) and (p / "state.json").is_file()
    ]
    return [p for _, p in sorted(found)]


def locate_checkpoint(
    where: Path | str, state_dir: Path | None, experiment_id: str | None = None
) -> Path:
    """A checkpoint folder from a path, or ``"latest"``: the newest round of
    ``experiment_id``, or of whichever experiment saved last."""
    if str(where) != "latest":
        path = Path(where)
        if (path / "state.json").is_file():
            return path
        rounds = round_dirs(path)  # an experiment folder: its newest round
        if rounds:
            return rounds[-1]
        raise NotFound(f"no checkpoint at {path}")
    if state_dir is None:
        raise NotFound("no state folder to look for checkpoints in", hint="pass state_dir=")
    if experiment_id is not None:
        candidates = round_dirs(experiment_dir(state_dir, experiment_id))[-1:]
    else:
        root = Path(state_dir) / "experiments"
        experiments = sorted(root.iterdir()) if root.is_dir() else []
        candidates = [r[-1] for e in experiments if (r := round_dirs(e))]
    if not candidates:
        scope = f"experiment {experiment_id}" if experiment_id else "any experiment"
        raise NotFound(f"no checkpoint of {scope} under {state_dir}")
    return max(candidates, key=lambda p: (p / "state.json").stat().st_mtime_ns)


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValidationError(f"{path} is not a fedward experiment checkpoint")
    if state.get("version") != VERSION:
        raise ValidationError(
            f"checkpoint {path} has version {state.get('version')}, not {VERSION}"
        )
    groups: dict[str, Params] = {}
    for file in sorted((path / "aggregator").glob("*.safetensors")):
        groups[file.name.removesuffix(".safetensors")] = load_params(file)
    return Checkpoint(
        path=path,
        rounds_done=int(state["rounds_done"]),
        params=load_params(path / "params.safetensors"),
        aggregator_tensors=groups,
        state=state,
    )
