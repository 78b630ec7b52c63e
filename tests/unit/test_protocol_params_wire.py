from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load

from fedward.core.aggregation import WeightedMean, layout_of
from fedward.errors import ProtocolError, ValidationError
from fedward.protocol.params_wire import (
    MAX_ABS_VALUE,
    load_params,
    map_params,
    open_params,
    open_update,
    params_file_bound,
    params_from_bytes,
    params_to_bytes,
    save_params,
)
from fedward.researcher import FedAvg


def sample_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
        "conv.bias": rng.standard_normal(4),  # float64
        "half": rng.standard_normal(5).astype(np.float16),
        "steps": np.array([3, 4], dtype=np.int64),
        "counts": np.array([1, 2, 3], dtype=np.int32),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def assert_same(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> None:
    assert set(left) == set(right)
    for name, value in left.items():
        assert right[name].dtype == value.dtype, name
        assert right[name].shape == value.shape, name
        np.testing.assert_array_equal(right[name], value)


def safetensors_blob(header: dict[str, object], data: bytes) -> bytes:
    """Hand-made safetensors bytes: 8-byte little-endian header length, JSON header, data."""
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


# --- round trips ------------------------------------------------------------------------


def test_bytes_round_trip_keeps_names_values_shapes_and_dtypes() -> None:
    assert_same(sample_params(), params_from_bytes(params_to_bytes(sample_params())))


def test_file_round_trip_keeps_names_values_shapes_and_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    save_params(sample_params(), path)
    assert_same(sample_params(), load_params(path))


def test_bytes_and_file_forms_are_the_same_format(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    path.write_bytes(params_to_bytes(sample_params()))
    assert_same(sample_params(), load_params(path))


def test_a_scalar_parameter_keeps_its_zero_dimensional_shape(tmp_path: Path) -> None:
    # torch's BatchNorm keeps ``num_batches_tracked`` as a 0-d tensor: a round trip that
    # turned () into (1,) would make the node's load_state_dict fail on a size mismatch.
    params: dict[str, np.ndarray] = {
        "num_batches_tracked": np.array(7, dtype=np.int64),
        "s": np.array(2.5, np.float32),
    }
    assert_same(params, params_from_bytes(params_to_bytes(params)))
    path = tmp_path / "p.safetensors"
    save_params(params, path)
    assert_same(params, load_params(path))


def test_non_contiguous_and_big_endian_arrays_travel_by_value() -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    params = {"transposed": base.T, "strided": base[:, ::2], "big": base.astype(">f4")}
    back = params_from_bytes(params_to_bytes(params))
    np.testing.assert_array_equal(back["transposed"], base.T)
    np.testing.assert_array_equal(back["strided"], base[:, ::2])
    np.testing.assert_array_equal(back["big"], base.astype(np.float32))


def test_the_header_is_marked_as_fedward_parameters() -> None:
    data = params_to_bytes({"w": np.zeros(1)})
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    assert header["__metadata__"] == {"format": "fedward-params", "version": "1"}


def test_the_same_parameters_always_give_the_same_bytes_hence_the_same_blob_id() -> None:
    # safetensors writes its metadata from a hash map; a resumed round must still send the
    # blob ids of the interrupted one.
    params = {"b": np.ones(3, dtype=np.float32), "a": np.zeros((2, 2))}
    reordered = {"a": params["a"], "b": params["b"]}
    seen = {params_to_bytes(p) for p in [params, reordered] * 20}
    assert len(seen) == 1
    assert params_from_bytes(seen.pop()).keys() == {"a", "b"}


def test_the_bytes_fedward_writes_are_read_back_exactly_by_safetensors_itself() -> None:
    # params_to_bytes and write_params assemble the file themselves (no copy of the values
    # but the one into the result); any safetensors reader must take them as they are.
    params = {
        **sample_params(),
        "big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
        "strided": np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2],
        "scalar": np.float64(2.5),
        "n\u00e9": np.ones(3, dtype=np.uint8),
        "flags": np.array([True, False]),
    }
    data = params_to_bytes(params)
    header_size = struct.unpack("<Q", data[:8])[0]
    assert header_size % 8 == 0  # buffers stay aligned, as safetensors writes them
    back = load(data)
    assert back.keys() == params.keys()
    for name, value in params.items():
        expected = np.asarray(value)
        assert back[name].shape == expected.shape and back[
            name
        ].dtype == expected.dtype.newbyteorder("=")
        assert np.array_equal(back[name], expected), name
    assert json.loads(data[8 : 8 + header_size])["__metadata__"] == {
        "format": "fedward-params",
        "version": "1",
    }


def test_object_arrays_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    params = {"ok": np.zeros(2), "bad": np.array([{"a": 1}, None], dtype=object)}
    with pytest.raises(ProtocolError, match="'bad' has dtype object"):
        params_to_bytes(params)
    with pytest.raises(ProtocolError, match="'bad' has dtype object"):
        save_params(params, tmp_path / "p.safetensors")
    assert not (tmp_path / "p.safetensors").exists()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\x80\x04\x95pickle-like",
        b"\xff" * 8 + b"{}",
        struct.pack("<Q", 2) + b"{}" + b"trailing",  # bytes no tensor claims
        safetensors_blob({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8),
        safetensors_blob(
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 16
        ),
        safetensors_blob({"w": {"dtype": "NOPE", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
        b"{not a header" * 3,
    ],
    ids=[
        "empty",
        "garbage",
        "pickle",
        "huge-header-length",
        "empty-header-extra",
        "truncated-data",
        "shape-disagrees",
        "unknown-dtype",
        "text",
    ],
)
def test_garbage_bytes_are_a_protocol_error(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="not valid safetensors"):
        params_from_bytes(data)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(ProtocolError, match="not valid safetensors"):
        open_params(path)


def test_a_bfloat16_tensor_numpy_cannot_hold_is_a_protocol_error(tmp_path: Path) -> None:
    # A node may send what its torch plan produced; numpy has no bfloat16. Refusing it
    # must be a ProtocolError (the researcher drops that node), not a crash of the round.
    data = safetensors_blob(
        {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4
    )
    with pytest.raises(ProtocolError):
        params_from_bytes(data)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(data)
    with pytest.raises(ProtocolError), open_params(path) as lazy:
        dict(lazy)


def test_mapped_parameters_equal_the_read_ones_and_writing_them_leaves_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.safetensors"
    save_params(sample_params(), path)
    mapped = map_params(path)
    assert_same(sample_params(), mapped)
    mapped["conv.weight"] += 1  # copy-on-write: the job's own pages
    mapped["steps"][0] = 99
    assert_same(sample_params(), load_params(path))
    path.unlink()  # the node removes its scratch input; the job's arrays stay valid
    assert int(mapped["steps"][0]) == 99
    np.testing.assert_array_equal(mapped["counts"], [1, 2, 3])


@pytest.mark.parametrize("data", [b"", b"\x00" * 8, safetensors_blob({"w": []}, b"")])
def test_mapping_a_malformed_file_is_a_protocol_error(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(ProtocolError):
        map_params(path)


def test_opening_a_missing_file_is_a_protocol_error(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError):
        open_params(tmp_path / "absent.safetensors")


# --- the lazy mapping ---------------------------------------------------------------------


def test_open_params_reads_the_layout_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    save_params(sample_params(), path)
    with open_params(path) as lazy:
        assert set(lazy) == set(sample_params())
        assert len(lazy) == len(sample_params())
        assert lazy.layout == {n: (a.shape, a.dtype) for n, a in sample_params().items()}
        np.testing.assert_array_equal(lazy["conv.bias"], sample_params()["conv.bias"])
        with pytest.raises(KeyError):
            lazy["absent"]
        assert "absent" not in lazy


def write_update(tmp_path: Path, name: str, params: dict[str, np.ndarray]) -> Path:
    path = tmp_path / f"{name}.safetensors"
    save_params(params, path)
    return path


def test_fedavg_folds_lazy_updates_from_files_and_keeps_dtypes(tmp_path: Path) -> None:
    updates = [
        (
            {
                "w": np.array([1.0, 2.0], np.float32),
                "b": np.array([10.0]),
                "n": np.array([2], np.int64),
            },
            1,
        ),
        (
            {
                "w": np.array([3.0, 6.0], np.float32),
                "b": np.array([20.0]),
                "n": np.array([4], np.int64),
            },
            2,
        ),
        (
            {
                "w": np.array([5.0, -4.0], np.float32),
                "b": np.array([0.0]),
                "n": np.array([8], np.int64),
            },
            1,
        ),
    ]
    aggregator = FedAvg()
    aggregator.begin_round({}, 0)
    for index, (params, weight) in enumerate(updates):
        with open_params(write_update(tmp_path, f"u{index}", params)) as lazy:
            aggregator.add(f"node{index}", lazy, float(weight), lazy.layout)
    result = aggregator.finish()
    # w: (1 + 6 + 5) / 4, (2 + 12 - 4) / 4; b: (10 + 40 + 0) / 4; n: (2 + 8 + 8) / 4 = 4.5 -> int
    np.testing.assert_allclose(result["w"], [3.0, 2.5])
    np.testing.assert_allclose(result["b"], [12.5])
    assert result["w"].dtype == np.float32
    assert result["b"].dtype == np.float64
    assert result["n"].dtype == np.int64


def test_fedavg_starts_each_round_afresh(tmp_path: Path) -> None:
    aggregator = FedAvg()
    aggregator.begin_round({}, 0)
    aggregator.add("a", {"w": np.array([100.0])}, 1.0)
    aggregator.finish()
    aggregator.begin_round({}, 1)
    aggregator.add("a", {"w": np.array([2.0])}, 1.0)
    np.testing.assert_allclose(aggregator.finish()["w"], [2.0])


def test_a_lazy_update_with_another_layout_leaves_the_sums_untouched(tmp_path: Path) -> None:
    mean = WeightedMean()
    with open_params(write_update(tmp_path, "good", {"w": np.ones(3, np.float32)})) as lazy:
        mean.add(lazy, 1.0, lazy.layout)
    bad = write_update(tmp_path, "bad", {"w": np.ones(4, np.float32)})
    with open_params(bad) as lazy, pytest.raises(ValidationError, match=r"'w' is float32\[4\]"):
        mean.add(lazy, 5.0, lazy.layout)
    assert mean.count == 1
    np.testing.assert_array_equal(mean.result()["w"], np.ones(3, np.float32))


# --- updates from peers ---------------------------------------------------------------------


def test_every_honest_file_fits_the_download_bound_of_its_layout(tmp_path: Path) -> None:
    many = {
        f"encoder.layers.{i}.attention.{'q' * 200}.weight": np.zeros((1,) * 30, np.float16)
        for i in range(300)
    }
    for params in (sample_params(), many, {"w": np.zeros((), np.float64)}, {}):
        path = tmp_path / "p.safetensors"
        save_params(params, path)
        assert path.stat().st_size <= params_file_bound(layout_of(params))
        assert len(params_to_bytes(params)) <= params_file_bound(layout_of(params))


def test_open_update_accepts_the_expected_layout_and_reads_values_a_chunk_at_a_time(
    tmp_path: Path,
) -> None:
    # Several chunks per tensor, with a NaN in the last one only.
    big = np.zeros(3 * (1 << 20) // 4 + 5, np.float32)
    path = tmp_path / "big.safetensors"
    save_params({"big": big, "small": np.ones(2)}, path)
    with open_update(path, layout_of({"big": big, "small": np.ones(2)})) as update:
        np.testing.assert_array_equal(update["small"], np.ones(2))
    big[-1] = np.nan
    save_params({"big": big, "small": np.ones(2)}, path)
    with pytest.raises(ProtocolError, match=r"non-finite values .* 'big'"):
        open_update(path, layout_of({"big": big, "small": np.ones(2)}))


def test_open_update_refuses_another_layout_before_reading_values(tmp_path: Path) -> None:
    path = tmp_path / "u.safetensors"
    save_params({"w": np.full(3, np.nan, np.float32)}, path)
    with pytest.raises(ValidationError, match=r"'w' is float32\[3\], expected float32\[4\]"):
        open_update(path, {"w": ((4,), np.dtype(np.float32))})


def test_values_past_the_bound_are_refused_for_floats_and_integers(tmp_path: Path) -> None:
    for value in (np.array([-3e38], np.float32), np.array([2**62], np.int64)):
        path = tmp_path / "u.safetensors"
        save_params({"v": value}, path)
        with pytest.raises(ProtocolError, match="values beyond"):
            open_update(path, layout_of({"v": value}))
    edge = np.array([MAX_ABS_VALUE, -MAX_ABS_VALUE], np.int64)
    save_params({"v": edge}, tmp_path / "edge.safetensors")
    open_update(tmp_path / "edge.safetensors", layout_of({"v": edge})).close()
