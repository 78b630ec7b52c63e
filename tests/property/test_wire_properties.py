"""Properties of what travels: control messages and parameter files.

- Any bytes: the codec gives a message or a ``ProtocolError``, nothing else; what it
  gives encodes back to the same message; every id it accepts is a valid fedward id.
- Any parameters: safetensors round-trips them exactly, through the lazy reader and
  the library alike; the header reader accepts the file and places every tensor inside.
- Any damage to a valid file (a cut, a flipped byte, a forged header): the readers give
  the same tensors or a ``ProtocolError``; never a tensor outside the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedward.core.ids import validate_id
from fedward.core.messages import (
    TEXT_CONTROLS,
    ErrorReply,
    Message,
    PingRequest,
    ScalarEvent,
    SearchRequest,
    TrainReply,
)
from fedward.errors import ProtocolError
from fedward.protocol.codec import decode_any, decode_reply, decode_request, encode
from fedward.protocol.params_wire import open_params, params_from_bytes, params_to_bytes
from fedward.protocol.safetensors_header import read_header
from tests.fuzz.targets import codec, params_wire, safetensors_header

ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
sha256 = st.from_regex(r"\A[0-9a-f]{64}\Z")
tags = st.from_regex(rf"\A[^\t\n\r{TEXT_CONTROLS},]{{1,64}}\Z")
short_text = st.from_regex(rf"\A[^\n\r{TEXT_CONTROLS}]{{0,200}}\Z")
long_text = st.from_regex(rf"\A[^{TEXT_CONTROLS}]{{0,500}}\Z")
metric_names = st.from_regex(r"\A[A-Za-z0-9_.:/@+-]{1,100}\Z")
finite = st.floats(allow_nan=False, allow_infinity=False)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(PingRequest, request_id=ids),
    st.builds(SearchRequest, request_id=ids, tags=st.lists(tags, min_size=1, max_size=5)),
    st.builds(ErrorReply, request_id=ids, code=short_text, message=long_text),
    st.builds(
        TrainReply,
        request_id=ids,
        experiment_id=ids,
        round_index=st.integers(0, 2**40),
        params_blob=sha256,
        sample_count=st.integers(0, 2**53),
        metrics=st.dictionaries(metric_names, finite, max_size=4),
        extra_blobs=st.dictionaries(ids, sha256, max_size=2),
    ),
    st.builds(
        ScalarEvent,
        request_id=ids,
        experiment_id=ids,
        round_index=st.integers(0, 1000),
        name=metric_names,
        value=finite,
        step=st.integers(0, 10**6),
    ),
)


@given(messages)
def test_every_message_survives_a_round_trip(message: Message) -> None:
    assert decode_any(encode(message)) == message


@given(st.binary(max_size=2048))
def test_any_bytes_decode_to_a_message_or_a_protocol_error(data: bytes) -> None:
    codec(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=70),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)


@given(
    st.sampled_from(["ping_request", "search_request", "train_request", "error_reply"]),
    st.dictionaries(
        st.sampled_from(["request_id", "tags", "experiment_id", "round_index", "code", "x"]),
        json_values,
        max_size=5,
    ),
)
def test_a_message_with_any_fields_is_decoded_whole_or_refused(
    type_key: str, fields: dict[str, object]
) -> None:
    data = json.dumps({"protocol": 1, "type": type_key, **fields}).encode()
    try:
        message = decode_any(data)
    except ProtocolError:
        return
    # Whatever got through is a message whose ids every other part of fedward accepts.
    validate_id(message.request_id)
    for tag in getattr(message, "tags", []):
        assert "\n" not in tag


@given(st.text(max_size=70))
def test_an_id_the_codec_accepts_is_an_id_everywhere(request_id: str) -> None:
    data = json.dumps({"protocol": 1, "type": "ping_request", "request_id": request_id})
    try:
        decode_request(data.encode())
    except ProtocolError:
        return
    assert validate_id(request_id) == request_id


@given(messages)
def test_requests_and_replies_are_never_taken_for_one_another(message: Message) -> None:
    data = encode(message)
    decoders = [decode_request, decode_reply]
    results = []
    for decode in decoders:
        with contextlib.suppress(ProtocolError):
            results.append(decode(data))
    assert len(results) == 1


# --- parameters ----------------------------------------------------------------------------

dtypes = st.sampled_from(
    ["float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool"]
)
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)


@st.composite
def parameters(draw: st.DrawFn) -> dict[str, np.ndarray]:
    chosen = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    assume("__metadata__" not in chosen)
    out = {}
    for name in chosen:
        dtype = draw(dtypes)
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        out[name] = draw(hnp.arrays(dtype, shape))
    return out


def _same(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> bool:
    return sorted(left) == sorted(right) and all(
        left[n].dtype == right[n].dtype
        and left[n].shape == right[n].shape
        and left[n].tobytes() == right[n].tobytes()
        for n in left
    )


@given(params=parameters())
def test_parameters_survive_a_round_trip_through_both_readers(
    params: dict[str, np.ndarray], tmp_path: Path
) -> None:
    data = params_to_bytes(params)
    assert _same(params_from_bytes(data), params)
    path = tmp_path / "params.safetensors"
    path.write_bytes(data)
    with open_params(path) as lazy:
        assert _same({name: lazy[name] for name in lazy}, params)
    fd = os.open(path, os.O_RDONLY)
    try:
        entries = read_header(fd, len(data))
    finally:
        os.close(fd)
    assert sum(entry.nbytes for entry in entries.values()) == sum(a.nbytes for a in params.values())


@given(parameters(), st.data())
def test_a_damaged_parameters_file_is_read_the_same_or_refused(
    params: dict[str, np.ndarray], data: st.DataObject
) -> None:
    original = params_to_bytes(params)
    damage = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    at = data.draw(st.integers(0, len(original) - 1))
    if damage == "cut":
        damaged = original[:at]
    elif damage == "flip":
        damaged = (
            original[:at]
            + bytes([original[at] ^ data.draw(st.integers(1, 255))])
            + original[at + 1 :]
        )
    else:
        damaged = original[:at] + data.draw(st.binary(min_size=1, max_size=8)) + original[at:]
    safetensors_header(damaged)
    params_wire(damaged)


@given(
    st.dictionaries(
        names,
        st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["F32", "I64", "BOOL", "U8", "X", 3]),
                "shape": st.lists(st.integers(-2, 2**40) | st.booleans(), max_size=4),
                "data_offsets": st.lists(st.integers(-2, 2**20) | st.floats(), max_size=3),
            }
        ),
        max_size=3,
    ),
    st.binary(max_size=64),
)
def test_a_forged_header_places_tensors_inside_the_file_or_is_refused(
    header: dict[str, object], body: bytes
) -> None:
    raw = json.dumps(header).encode()
    safetensors_header(len(raw).to_bytes(8, "little") + raw + body)
