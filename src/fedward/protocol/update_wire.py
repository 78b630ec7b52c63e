"""Encoded updates and encoded global models <-> safetensors (see ``core.update_codec``).

An encoded file is a safetensors file whose ``__metadata__`` says ``format:
fedward-update``, the ``codec`` and the ``base``: the id of the reference the delta is
taken against (the blob id of the global model the node trained from, for an update;
the previous round's, for a global model sent as a delta). bfloat16 bits are labelled
``BF16``, as other safetensors readers expect.

Reading one is reading a peer's bytes: the header is checked as any other
(``safetensors_header``), then its metadata must declare exactly the codec and base the
reader expects, then its tensors must have exactly the codec's layout for the model,
and their values must pass ``update_codec.decode``; only then is anything decoded. The
decoded delta is bounded as an update is (finite, within ``MAX_ABS_VALUE`` once added
to its reference: ``check_decoded``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fedward.core import update_codec
from fedward.core.update_codec import Arrays, ModelLayout
from fedward.errors import ProtocolError, ValidationError
from fedward.protocol.params_wire import MAX_ABS_VALUE
from fedward.protocol.params_writer import safetensors_parts
from fedward.protocol.safetensors_header import invalid, read_header, read_metadata

FORMAT = "fedward-update"


def encoded_bytes(
    codec: str,
    wire: Mapping[str, np.ndarray],
    base: str,
    layout: ModelLayout,
) -> bytes:
    """The safetensors bytes of ``wire`` (from ``update_codec.encode``), deterministic:
    names sorted, metadata sorted, so the same update gives the same blob id."""
    metadata = {"base": base, "codec": codec, "format": FORMAT, "version": "1"}
    labels = {
        name: "BF16"
        for name in wire
        if codec == "bfloat16" and name in layout and update_codec.encoded(layout[name][1])
    }
    head, buffers = safetensors_parts(wire, metadata, labels)
    return b"".join([head, *buffers])


def write_encoded(
    path: Path,
    codec: str,
    wire: Mapping[str, np.ndarray],
    base: str,
    layout: ModelLayout,
) -> None:
    with open(path, "wb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC, 0o600)) as out:
        out.write(encoded_bytes(codec, wire, base, layout))


def read_encoded(path: Path, codec: str, base: str, layout: ModelLayout) -> Arrays:
    """The decoded delta of the encoded file ``path``, which must declare ``codec`` and
    ``base`` and carry what ``update_codec.check_wire_layout`` allows;
    ``ValidationError`` (or its ``ProtocolError``) for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise invalid(f"cannot open the file: {exc.strerror}") from exc
    try:
        size = os.fstat(fd).st_size
        metadata = read_metadata(fd, size)
        if metadata.get("format") != FORMAT:
            raise ProtocolError("the encoded update does not declare format fedward-update")
        declared = metadata.get("codec", "")
        if declared != codec:
            raise ValidationError(
                f"the encoded update declares codec {declared[:20]!r}, expected {codec!r}"
            )
        if metadata.get("base") != base:
            raise ValidationError("the encoded update is a delta against another model")
        entries = read_header(fd, size, {"BF16": "uint16"})
        got = {n: (e.shape, str(e.dtype)) for n, e in entries.items()}
        update_codec.check_wire_layout(codec, got, layout)  # before anything is read
        wire: Arrays = {}
        for name, entry in entries.items():
            out = np.empty(entry.shape, dtype=entry.dtype)
            view = memoryview(out.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
            done = 0
            while done < entry.nbytes:
                count = os.preadv(fd, [view[done:]], entry.offset + done)
                if count <= 0:
                    raise ProtocolError(f"encoded update ended inside tensor {name[:60]!r}")
                done += count
            wire[name] = out
    finally:
        os.close(fd)
    return update_codec.decode(codec, wire, layout)


def check_decoded(params: Mapping[str, np.ndarray]) -> None:
    """``ValidationError`` unless every value of the decoded parameters is finite and
    within ``MAX_ABS_VALUE``, as ``open_update`` requires of a plain update."""
    for name, values in params.items():
        if values.dtype == np.bool_ or values.size == 0:
            continue
        low, high = values.min().item(), values.max().item()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValidationError(f"non-finite values in tensor {name[:60]!r} once decoded")
        if low < -MAX_ABS_VALUE or high > MAX_ABS_VALUE:
            raise ValidationError(f"values beyond +/-{float(MAX_ABS_VALUE):.3g} in {name[:60]!r}")
