"""The node's side of update codecs (docs/update-codecs.md).

Two steps of a round's job, in the daemon, never in the worker:

- ``receive_params``: the parameters blob is either the full model or a 16-bit delta
  against the model this node reconstructed last time (``params_base``). Either way the
  job gets full parameters, and the node keeps them as its reference ``params_ref``.
- ``encode_update``: the job's result, already checked and protected
  (``jobs.results``, ``privacy_policy``), minus the parameters the job got, encoded
  with the request's codec. With error feedback (``int8``) the part the codec left out
  is kept and added to the next round's delta.

Both live in ``jobs/<experiment>/codec/`` (0700, the daemon's: the worker cannot read
or change them), one reference and one residual, each at most the model's size; they go
with the experiment's job folder. The reference's id is in its file name, written by
rename, so a crash never leaves a reference under another model's id.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from fedward.core import update_codec
from fedward.core.aggregation import layout_of
from fedward.core.messages import TrainRequest
from fedward.errors import ValidationError
from fedward.protocol.params_wire import load_params, save_params
from fedward.protocol.update_wire import check_decoded, read_encoded, write_encoded
from fedward.storage.atomic import fsync_path

_RESIDUAL = "residual.safetensors"


def _state_dir(job_root: Path) -> Path:
    path = job_root / "codec"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise ValidationError("the experiment's codec folder is not a folder")
    return path


def _reference_path(state: Path, ref_id: str) -> Path:
    return state / f"reference-{ref_id}.safetensors"


def check_request(request: TrainRequest) -> str:
    """The request's codec, if this node knows it and it goes with the request."""
    codec = request.update_codec
    if codec not in update_codec.UPDATE_CODECS:
        raise ValidationError(
            f"this node does not know update codec {codec!r} (it knows "
            f"{', '.join(update_codec.UPDATE_CODECS)}); upgrade the node or choose another"
        )
    if codec != "none" and request.secure_aggregation is not None:
        raise ValidationError("update codecs do not go with secure aggregation")
    if codec != "none" and request.params_ref is None:
        raise ValidationError(f"update codec {codec!r} needs params_ref in the request")
    return codec


def receive_params(job_root: Path, request: TrainRequest, params_in: Path) -> None:
    """Make ``params_in`` (the downloaded blob) the full parameters, and keep them."""
    codec = check_request(request)
    if codec == "none":
        return
    assert request.params_ref is not None
    state = _state_dir(job_root)
    if request.params_base is not None:
        base = _reference_path(state, request.params_base)
        if not base.exists():
            raise ValidationError(
                "the global parameters came as a change of a model this node does not hold "
                "(its codec state was lost); the researcher sends the full model next round"
            )
        reference = load_params(base)
        delta = read_encoded(
            params_in,
            update_codec.downlink_codec(codec),
            request.params_base,
            layout_of(reference),
        )
        full = update_codec.apply_delta(reference, delta)
        check_decoded(full)
        # A new file, never written in place: params_in may share its inode with a
        # reference (they are hard links).
        decoded = params_in.with_suffix(".decoded")
        save_params(full, decoded)
        decoded.replace(params_in)
    keep = _reference_path(state, request.params_ref)
    if keep != params_in:
        scratch = keep.with_suffix(".tmp")
        scratch.unlink(missing_ok=True)
        os.link(params_in, scratch)  # the job's inputs are read-only to the worker
        # The download may be a scratch file, never synced; the reference outlives the
        # job, and a torn one after a power cut would decode the next delta into garbage.
        fsync_path(scratch)
        scratch.replace(keep)
        fsync_path(state)
    for old in state.glob("reference-*.safetensors"):
        if old != keep:
            old.unlink(missing_ok=True)


def encode_update(
    job_root: Path, request: TrainRequest, params_in: Path, result: Path, dest: Path
) -> Path:
    """The file to upload: ``result`` itself without a codec, else its encoded delta
    against ``params_in`` written to ``dest``."""
    codec = request.update_codec
    if codec == "none":
        return result
    assert request.params_ref is not None
    reference = load_params(params_in)
    layout = layout_of(reference)
    delta = update_codec.delta_of(load_params(result), reference)
    if codec in update_codec.FEEDBACK_CODECS:
        residual_path = _state_dir(job_root) / _RESIDUAL
        residual = _residual(residual_path, delta)
        wire, left = update_codec.encode_with_feedback(codec, delta, residual)
        save_params(left, residual_path)
    else:
        wire = update_codec.encode(codec, delta)
    write_encoded(dest, codec, wire, request.params_ref, layout)
    return dest


def _residual(path: Path, delta: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Last round's residual, if it fits this delta (a changed model starts afresh)."""
    if not path.exists():
        return None
    with contextlib.suppress(ValidationError):
        residual = load_params(path)
        fits = all(
            name in delta and residual[name].shape == np.shape(delta[name]) for name in residual
        )
        if fits and all(np.isfinite(r).all() for r in residual.values()):
            return residual
    return None
