"""The researcher's side of update codecs (docs/update-codecs.md).

``CodecRounds`` keeps the one reference model every node that trained last round holds
(they all reconstruct it bit for bit: decoding is deterministic). Each round:

1. ``round_params``: the global model G is sent as ``R = R_prev + dec(enc(G - R_prev))``
   (16-bit delta), so R differs from G by one rounding of that delta, never more: the
   next round's delta is taken against R, the model the nodes really hold. The round
   runs on R (the aggregator's begin_round, the nodes' training, the decoding).
2. ``upload``: nodes that hold ``R_prev`` get the delta; the others (first round, a node
   that missed a round or failed) the full R in float32. All keep R under one id.
3. ``decode``: a node's update is its encoded delta against R, checked (declared codec
   and base, exact layout, finite values) and decoded to full parameters before any
   aggregator sees it; nodes whose update was decoded hold R for the next round.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from fedward.core import update_codec
from fedward.core.aggregation import layout_of
from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.learning.setting_names import unknown_setting
from fedward.protocol.params_wire import load_params, params_to_bytes
from fedward.protocol.update_wire import check_decoded, encoded_bytes, read_encoded


def check_update_codec(name: object) -> str:
    """``name`` if it is an update codec, else an error naming the closest one."""
    if not isinstance(name, str) or name not in update_codec.UPDATE_CODECS:
        raise unknown_setting("update_codec", str(name), update_codec.UPDATE_CODECS)
    return name


def codec_rounds(name: object, secure_aggregation: bool) -> CodecRounds | None:
    """An experiment's codec state for ``update_codec=name`` (None for "none")."""
    codec = check_update_codec(name)
    if codec == "none":
        return None
    if secure_aggregation:
        raise ValidationError(
            f"update_codec={codec!r} cannot go with secure aggregation: the nodes send "
            "masked fixed-point vectors, which a codec can neither shrink nor decode",
            hint="use update_codec='none' with SecAgg",
        )
    return CodecRounds(codec)


class PutsBytes(Protocol):
    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str: ...


class CodecRounds:
    def __init__(self, codec: str) -> None:
        self.codec = check_update_codec(codec)
        self.downlink = update_codec.downlink_codec(codec)
        self.reference: Params | None = None  # what the holders hold
        self.reference_id: str | None = None
        self.holders: set[str] = set()
        self._next: Params | None = None
        self._delta_bytes: bytes | None = None
        self._fields: dict[str, dict[str, Any]] = {}

    def round_params(self, global_params: Mapping[str, Any]) -> Params:
        """The model this round runs on (R above), and the delta that carries it."""
        if self.reference is None or layout_of(self.reference) != layout_of(global_params):
            self._next, self._delta_bytes = dict(global_params), None
            return self._next
        layout = layout_of(self.reference)
        wire = update_codec.encode(
            self.downlink, update_codec.delta_of(global_params, self.reference)
        )
        sent = update_codec.decode(self.downlink, wire, layout)
        self._next = update_codec.apply_delta(self.reference, sent)
        assert self.reference_id is not None
        self._delta_bytes = encoded_bytes(self.downlink, wire, self.reference_id, layout)
        return self._next

    def upload(self, blobs: PutsBytes, round_params: Params, selected: Sequence[str]) -> str:
        """Upload this round's blobs (``blobs``: a ``BlobStore``, or the round's
        ``StreamedPuts``); the id the nodes keep the round's model under."""
        assert self._next is not None
        with_delta = sorted(n for n in selected if n in self.holders)
        full = sorted(n for n in selected if n not in self.holders)
        self._fields = {}
        ref_id = ""
        if with_delta and self._delta_bytes is not None:
            delta_blob = blobs.put_bytes(self._delta_bytes, readers=with_delta)
            ref_id = delta_blob
            for node in with_delta:
                self._fields[node] = {"params_blob": delta_blob, "params_base": self.reference_id}
        else:
            full, with_delta = sorted(selected), []
        if full:
            full_blob = blobs.put_bytes(params_to_bytes(self._next), readers=full)
            ref_id = ref_id or full_blob
            for node in full:
                self._fields[node] = {"params_blob": full_blob, "params_base": None}
        for fields in self._fields.values():
            fields["params_ref"] = ref_id
            fields["update_codec"] = self.codec
        # From here on the nodes may hold the new model, whatever becomes of the round.
        self.reference, self.reference_id, self.holders = self._next, ref_id, set()
        return ref_id

    def request_fields(self, node_id: str) -> dict[str, Any]:
        """What node ``node_id``'s train request carries for the codec (after upload)."""
        return dict(self._fields[node_id])

    # --- next to the checkpoints: a resumed experiment sends what the first run would ---

    def save(self, directory: Path, rounds_done: int) -> None:
        """Keep the reference, its id and its holders as they are after ``rounds_done``
        rounds, in ``directory/codec/`` (the last two). Written after the round's
        checkpoint; a crash between the two leaves none for that round, and a resumed
        experiment then sends the full model once (``restore`` finds nothing)."""
        if self.reference is None or self.reference_id is None:
            return
        folder = directory / "codec"
        folder.mkdir(mode=0o700, exist_ok=True)
        name = f"round-{rounds_done:04d}"
        scratch = folder / f".{name}.partial"
        scratch.write_bytes(params_to_bytes(self.reference))
        meta = {"id": self.reference_id, "holders": sorted(self.holders), "codec": self.codec}
        (folder / f"{name}.json").write_text(json.dumps(meta))
        scratch.replace(folder / f"{name}.safetensors")
        for old in sorted(folder.glob("round-*.safetensors"))[:-2]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)

    def restore(self, directory: Path, rounds_done: int) -> None:
        """The state ``save`` kept after ``rounds_done`` rounds, if it is there."""
        base = directory / "codec" / f"round-{rounds_done:04d}"
        try:
            meta = json.loads(base.with_suffix(".json").read_text())
            reference = load_params(base.with_suffix(".safetensors"))
        except (OSError, ValueError):
            return
        if meta.get("codec") == self.codec and isinstance(meta.get("id"), str):
            self.reference, self.reference_id = reference, meta["id"]
            self.holders = {str(n) for n in meta.get("holders", [])}

    def decode(self, node_id: str, path: Path) -> Params:
        """Node ``node_id``'s encoded update at ``path`` as full parameters, checked;
        ``ValidationError`` if it is not exactly what the codec allows."""
        if self.reference is None or self.reference_id is None:
            raise ValidationError("an encoded update arrived before any model was sent")
        delta = read_encoded(path, self.codec, self.reference_id, layout_of(self.reference))
        update = update_codec.apply_delta(self.reference, delta)
        check_decoded(update)
        self.holders.add(node_id)
        return update
