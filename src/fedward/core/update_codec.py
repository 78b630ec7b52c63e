"""Update codecs: how a model change travels in fewer bytes (docs/update-codecs.md).

Pure functions on name -> numpy array dicts, no files and no state: the wire format is
``protocol.update_wire``, the node's residual and reference are kept by the node.

A codec encodes a *delta* (the new parameters minus the reference both sides hold):

- ``float16``: each float tensor as IEEE half (11 significant bits; |delta| < 65504);
- ``bfloat16``: each float tensor as bfloat16, the top 16 bits of float32 rounded to
  nearest even (8 significant bits, float32's range); the bits travel as ``BF16``;
- ``int8``: each float tensor as int8 levels ``q`` in [-127, 127] and one float32 scale
  ``max|x| / 127`` per tensor (``__int8_scales__``, in sorted name order); used with error
  feedback (``encode_with_feedback``): what a round did not send is added to the next.

Tensors that are not float32/float64 (integer buffers, bool masks, float16 weights)
travel as their full values, unencoded: they are few and small, and a delta of an
integer counter would need its own rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedward.errors import ValidationError

Layout = dict[str, tuple[tuple[int, ...], str]]
#: A model's layout: name -> (shape, dtype as a name or a numpy dtype).
ModelLayout = Mapping[str, tuple[tuple[int, ...], Any]]
Arrays = dict[str, np.ndarray]

UPDATE_CODECS = ("none", "float16", "bfloat16", "int8")
#: Codecs whose error a node carries to the next round (error feedback).
FEEDBACK_CODECS = frozenset({"int8"})
SCALES = "__int8_scales__"
#: Tensors the int8 codec sends unquantised (the plans' buffers: feature statistics).
KEPT_BY_INT8 = "buffer:"
#: The largest int8 scale taken from a peer: |q * scale| stays far below float32's range.
MAX_SCALE = float(2**50)
_F16_MAX = float(np.finfo(np.float16).max)


def check_codec(name: str) -> str:
    if name not in UPDATE_CODECS:
        raise ValidationError(f"unknown update codec {name!r}; known: {', '.join(UPDATE_CODECS)}")
    return name


def downlink_codec(codec: str) -> str:
    """The 16-bit codec the global model's delta travels in for update codec ``codec``."""
    return "bfloat16" if codec == "bfloat16" else "float16"


def encoded(dtype: str | np.dtype) -> bool:
    """Whether tensors of ``dtype`` are encoded (else they travel as their values)."""
    dt = np.dtype(dtype)
    return dt.kind == "f" and dt.itemsize >= 4


_WIRE_DTYPE = {"float16": "float16", "bfloat16": "uint16", "int8": "int8"}


def check_wire_layout(codec: str, got: Layout, layout: ModelLayout) -> None:
    """``ValidationError`` unless ``got`` (an encoded update's names, shapes, dtypes) is
    what ``encode`` may write for a model of ``layout``: every model tensor, same shape;
    a float tensor in the codec's dtype or, kept, in its own (a float16 change past
    65504, an int8 codec's ``buffer:`` statistics); others in their own dtype; with
    int8, ``__int8_scales__`` holding one float32 per int8 tensor."""
    if codec not in _WIRE_DTYPE:
        raise ValidationError(f"update codec {codec!r} does not encode deltas")
    if codec == "int8" and SCALES in layout:
        raise ValidationError(f"a model tensor is named {SCALES!r}: use another codec")
    names = set(layout) | ({SCALES} if codec == "int8" else set())
    extra, missing = sorted(set(got) - names), sorted(names - set(got))
    if extra:
        raise ValidationError(f"the encoded update has tensors it should not: {_names(extra)}")
    if missing:
        raise ValidationError(f"the encoded update lacks tensors: {_names(missing)}")
    quantised = 0
    for name in sorted(layout):
        shape, dtype = tuple(layout[name][0]), str(np.dtype(layout[name][1]))
        allowed = {dtype, _WIRE_DTYPE[codec]} if encoded(dtype) else {dtype}
        if got[name][0] != shape or got[name][1] not in allowed:
            raise ValidationError(
                f"the encoded update has tensor {name[:60]!r} as {got[name][1]}"
                f"{list(got[name][0])}, expected {' or '.join(sorted(allowed))}{list(shape)}"
            )
        quantised += got[name][1] == "int8" and encoded(dtype)
    if codec == "int8" and got[SCALES] != ((quantised,), "float32"):
        raise ValidationError(f"the encoded update's {SCALES} must be float32[{quantised}]")


def _names(names: list[str]) -> str:
    return ", ".join(repr(n[:60]) for n in names[:5])


# --- bfloat16 bits, without a bfloat16 dtype in numpy ------------------------------------


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> the bfloat16 bits (uint16), rounded to nearest, ties to even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


# --- encode / decode ----------------------------------------------------------------------


def encode(codec: str, delta: Mapping[str, np.ndarray]) -> Arrays:
    """The wire tensors of ``delta`` (not-encoded tensors carry full values).
    ``ValidationError`` for a delta the codec cannot carry (float16 overflow, NaN)."""
    out: Arrays = {}
    scales: list[float] = []
    for name in sorted(delta):
        value = np.asarray(delta[name])
        if not encoded(value.dtype):
            out[name] = value
            continue
        if not np.isfinite(value).all():
            raise ValidationError(f"the update of {name!r} holds non-finite values")
        if codec == "float16":
            # A change past float16's range (feature statistics, counts kept as floats)
            # travels in its own dtype: exact, and rare enough not to cost much.
            too_large = value.size and float(np.abs(value).max()) > _F16_MAX
            out[name] = value if too_large else value.astype(np.float16)
        elif codec == "bfloat16":
            out[name] = to_bfloat16_bits(value)
        elif codec == "int8" and name.startswith(KEPT_BY_INT8):
            out[name] = value  # statistics, not gradients: one scale would wipe small ones
        elif codec == "int8":
            peak = float(np.abs(value).max()) if value.size else 0.0
            scale = np.float32(peak / 127.0)
            if scale > 0:
                levels = np.rint(value.astype(np.float32) / scale)
                out[name] = np.clip(levels, -127, 127).astype(np.int8)
            else:
                out[name] = np.zeros(value.shape, dtype=np.int8)
            scales.append(float(scale))
        else:
            raise ValidationError(f"update codec {codec!r} does not encode deltas")
    if codec == "int8":
        out[SCALES] = np.asarray(scales, dtype=np.float32)
    return out


def decode(codec: str, wire: Mapping[str, np.ndarray], layout: ModelLayout) -> Arrays:
    """The delta (float tensors, in their model dtype) or the values (the others) the
    wire tensors carry. Everything is checked first: ``check_wire_layout``, finite
    16-bit values, int8 levels in [-127, 127], scales finite, >= 0 and <= ``MAX_SCALE``;
    a ``ValidationError`` names the first problem."""
    check_wire_layout(codec, {n: (tuple(a.shape), str(a.dtype)) for n, a in wire.items()}, layout)
    scales = np.empty(0, dtype=np.float32)
    if codec == "int8":
        scales = wire[SCALES]
        if not (np.isfinite(scales).all() and (scales >= 0).all() and (scales <= MAX_SCALE).all()):
            raise ValidationError("the encoded update has an int8 scale that is negative, "
                                  "not finite or too large")  # fmt: skip
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are refused
        return _decode_checked(codec, wire, layout, scales)


def _decode_checked(
    codec: str,
    wire: Mapping[str, np.ndarray],
    layout: ModelLayout,
    scales: np.ndarray,
) -> Arrays:
    out: Arrays = {}
    index = 0
    for name in sorted(layout):
        dtype = layout[name][1]
        value = wire[name]
        if not encoded(dtype):
            out[name] = value
            continue
        if value.dtype == np.dtype(dtype):  # kept in its own dtype
            full = value
        elif codec == "float16":
            full = value.astype(dtype)
        elif codec == "bfloat16":
            full = from_bfloat16_bits(value).astype(dtype, copy=False)
        else:
            if value.size and int(value.min()) < -127:
                raise ValidationError(f"the encoded update has int8 level -128 in {name!r}")
            full = (value.astype(np.float32) * scales[index]).astype(dtype, copy=False)
            index += 1
        if not np.isfinite(full).all():
            raise ValidationError(f"the encoded update holds non-finite values in {name!r}")
        out[name] = full
    return out


def encode_with_feedback(
    codec: str, delta: Mapping[str, np.ndarray], residual: Mapping[str, np.ndarray] | None
) -> tuple[Arrays, Arrays]:
    """(wire tensors, new residual): the codec applied to ``delta + residual``, and what
    it left out, for the next round. Over rounds, the sum of what was sent differs from
    the sum of the true deltas by the last residual only (one quantisation step)."""
    corrected: Arrays = {}
    for name, value in delta.items():
        value = np.asarray(value)
        if encoded(value.dtype) and residual is not None and name in residual:
            corrected[name] = value + residual[name].astype(value.dtype, copy=False)
        else:
            corrected[name] = value
    wire = encode(codec, corrected)
    layout = {n: (tuple(a.shape), str(a.dtype)) for n, a in corrected.items()}
    sent = decode(codec, wire, layout)
    left = {
        name: (corrected[name] - sent[name]).astype(np.float32)
        for name in corrected
        if encoded(corrected[name].dtype)
    }
    return wire, left


def apply_delta(reference: Mapping[str, np.ndarray], decoded: Mapping[str, np.ndarray]) -> Arrays:
    """reference + delta for encoded tensors; the decoded values for the others. A sum
    past the dtype's range becomes inf, silently: the caller's value check refuses it."""
    out: Arrays = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for name, value in decoded.items():
            base = reference[name]
            if encoded(base.dtype):
                out[name] = (base + value).astype(base.dtype, copy=False)
            else:
                out[name] = value
    return out


def delta_of(new: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> Arrays:
    """new - reference for encoded tensors; new's values for the others."""
    return {
        name: (value - reference[name]) if encoded(np.asarray(value).dtype) else value
        for name, value in new.items()
    }
