"""Properties of the update codecs' decoder on hostile input (``core.update_codec``,
``protocol.update_wire``).

- Any bytes, any damage to a valid encoded file (a cut, a flipped byte), any dict of
  arrays: the decoder gives a ``ValidationError`` (its ``ProtocolError`` included) or a
  delta with exactly the model's names, shapes and dtypes and finite values. Nothing else:
  no other exception, no numpy warning, no tensor outside the file.
- Any finite float32 delta within float16's range: decoding what was encoded is within
  the codec's rounding bound.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedward.core import update_codec as uc
from fedward.errors import ValidationError
from fedward.protocol.update_wire import encoded_bytes, read_encoded

pytestmark = pytest.mark.filterwarnings("error")

LAYOUT = {
    "w": ((3, 4), "float32"),
    "b": ((4,), "float64"),
    "buffer:n": ((1,), "int64"),
    "buffer:mean": ((2,), "float32"),
}
BASE = "d" * 64
codecs = st.sampled_from(["float16", "bfloat16", "int8"])
dtypes = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "uint16", "bool"])


def _check_result(decoded: dict[str, np.ndarray]) -> None:
    assert sorted(decoded) == sorted(LAYOUT)
    for name, (shape, dtype) in LAYOUT.items():
        assert decoded[name].shape == shape and str(decoded[name].dtype) == dtype
        if decoded[name].dtype.kind == "f":
            assert np.isfinite(decoded[name]).all()


def _decode_file(data: bytes, codec: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "u.safetensors"
        path.write_bytes(data)
        try:
            decoded = read_encoded(path, codec, BASE, LAYOUT)
        except ValidationError:
            return
        _check_result(decoded)


def _honest(codec: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    delta = {
        name: (rng.normal(size=shape) * 10).astype(dtype) for name, (shape, dtype) in LAYOUT.items()
    }
    return encoded_bytes(codec, uc.encode(codec, delta), BASE, LAYOUT)


@given(st.binary(max_size=2048), codecs)
def test_any_bytes_decode_or_are_refused(data: bytes, codec: str) -> None:
    _decode_file(data, codec)


@given(codecs, st.integers(0, 2**32 - 1), st.data())
def test_damaged_encoded_files_decode_or_are_refused(
    codec: str, seed: int, data: st.DataObject
) -> None:
    valid = _honest(codec, seed)
    position = data.draw(st.integers(0, len(valid) - 1))
    kind = data.draw(st.sampled_from(["flip", "cut", "set"]))
    if kind == "cut":
        damaged = valid[:position]
    else:
        value = data.draw(st.integers(0, 255)) if kind == "set" else valid[position] ^ 0xFF
        damaged = valid[:position] + bytes([value]) + valid[position + 1 :]
    _decode_file(damaged, codec)


wire_arrays = st.dictionaries(
    st.sampled_from([*LAYOUT, uc.SCALES, "extra"]),
    dtypes.flatmap(
        lambda dtype: hnp.arrays(
            dtype, st.sampled_from([(3, 4), (4,), (1,), (2,), (0,), ()]),
            elements=None if dtype != "bool" else st.booleans(),
        )
    ),
    max_size=6,
)  # fmt: skip


@given(codecs, wire_arrays)
def test_any_wire_tensors_decode_or_are_refused(codec: str, wire: dict[str, np.ndarray]) -> None:
    try:
        decoded = uc.decode(codec, wire, LAYOUT)
    except ValidationError:
        return
    _check_result(decoded)


@given(
    codecs,
    hnp.arrays(np.float32, (3, 4), elements=st.floats(-6e4, 6e4, width=32)),
)
def test_encoding_rounds_within_the_codecs_bound(codec: str, values: np.ndarray) -> None:
    layout = {"w": ((3, 4), "float32")}
    back = uc.decode(codec, uc.encode(codec, {"w": values}), layout)["w"].astype(np.float64)
    error = np.abs(back - values)
    if codec == "int8":
        assert (error <= np.abs(values).max() / 254 * (1 + 1e-5) + 1e-30).all()
    else:
        relative = 2.0**-11 if codec == "float16" else 2.0**-8
        assert (error <= relative * np.abs(values) + 2.0**-25).all()
