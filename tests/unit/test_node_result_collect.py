"""``JobFolder.collect``: a worker's result copied out of its reach, hashed and checked in
the same pass. Real files in a real job folder; the worker is played by writing into
``work/`` directly."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from fedward.core.aggregation import Layout
from fedward.errors import JobError
from fedward.node.jobs.job_folder import JobFolder, result_name
from fedward.node.jobs.results import ResultCheck
from fedward.protocol.params_wire import MAX_ABS_VALUE, load_params, params_to_bytes

NAME = result_name("job1")
CAP = 64 << 20


def model() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        # Larger than the copy's chunk, and not a multiple of it: chunks and tensors
        # do not line up.
        "big": rng.standard_normal(700_001).astype(np.float32),
        "half": rng.standard_normal((3, 5)).astype(np.float16),
        "steps": np.arange(4, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float64),
    }


def layout_of(params: dict[str, np.ndarray]) -> Layout:
    return {name: (a.shape, a.dtype) for name, a in params.items()}


@pytest.fixture
def folder(tmp_path: Path) -> JobFolder:
    return JobFolder.create(tmp_path / "jobs", "exp1")


def collect(folder: JobFolder, data: bytes, check: ResultCheck | None = None) -> Path:
    (folder.work / NAME).write_bytes(data)
    expected = check or ResultCheck(layout_of(model()), "parameters")
    return folder.collect(NAME, CAP, "parameters", expected).path


def test_a_good_result_is_copied_hashed_and_taken_from_work(folder: JobFolder) -> None:
    data = params_to_bytes(model())
    (folder.work / NAME).write_bytes(data)
    collected = folder.collect(NAME, CAP, "parameters", ResultCheck(layout_of(model()), "x"))
    assert collected.path.parent == folder.outputs
    assert collected.path.read_bytes() == data
    assert collected.sha256 == hashlib.sha256(data).hexdigest()
    assert collected.size == len(data) and collected.unchanged()
    assert not (folder.work / NAME).exists()
    assert collected.path.stat().st_mode & 0o777 == 0o600
    copied = load_params(collected.path)
    assert all(np.array_equal(copied[n], a) for n, a in model().items())


def test_a_header_not_padded_to_eight_bytes_is_still_read(folder: JobFolder) -> None:
    # Another writer's file: tensors at odd offsets, as the format allows.
    values = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    header = json.dumps({"big": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}).encode()
    header += b" "  # 65 bytes: the data starts at an odd offset
    assert len(header) % 8
    data = struct.pack("<Q", len(header)) + header + values.tobytes()
    check = ResultCheck({"big": ((3,), np.dtype(np.float32))}, "parameters")
    assert collect(folder, data, check).read_bytes() == data


def poisoned(name: str, value: float | int) -> bytes:
    params = model()
    params[name] = params[name].copy()
    params[name].reshape(-1)[-1] = value
    return params_to_bytes(params)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (poisoned("big", np.nan), "the job's parameters hold non-finite values in 'big'"),
        (poisoned("half", -np.inf), "the job's parameters hold non-finite values in 'half'"),
        (poisoned("big", 2.0**61), "the job's parameters hold values beyond +/-1.15e+18 in 'big'"),
        (poisoned("steps", MAX_ABS_VALUE + 1), "values beyond"),
        (params_to_bytes({**model(), "spare": np.zeros(1)}), "have tensors the model has not"),
        (params_to_bytes({k: v for k, v in model().items() if k != "half"}), "lack tensors"),
        (
            params_to_bytes({**model(), "steps": np.arange(4, dtype=np.int32)}),
            "change tensor 'steps' from int64[4] to int32[4]",
        ),
        (b"\x01\x00", "the job's parameters are not valid: parameters are not valid safetensors"),
        (struct.pack("<Q", 1 << 40) + b"{}", "header size"),
        (params_to_bytes(model())[:-5], "not valid"),
        (params_to_bytes(model()) + b"\0", "trailing bytes"),
    ],
)
def test_a_bad_result_is_refused_and_leaves_no_copy(
    folder: JobFolder, data: bytes, words: str
) -> None:
    with pytest.raises(JobError) as caught:
        collect(folder, data)
    assert words in str(caught.value)
    assert list(folder.outputs.iterdir()) == []


def test_extras_may_hold_some_of_the_models_tensors(folder: JobFolder) -> None:
    params = model()
    check = ResultCheck(layout_of(params), "extra tensors 'c'", subset=True)
    assert collect(folder, params_to_bytes({"big": params["big"]}), check).exists()
    with pytest.raises(JobError, match="the job's extra tensors 'c' have tensors the model"):
        collect(folder, params_to_bytes({"other": params["big"]}), check)


def test_a_link_a_fifo_or_an_oversized_file_is_not_read(folder: JobFolder, tmp_path: Path) -> None:
    check = ResultCheck(layout_of(model()), "parameters")
    secret = tmp_path / "secret"
    secret.write_bytes(params_to_bytes(model()))
    os.symlink(secret, folder.work / NAME)
    with pytest.raises(JobError, match="not a regular file"):
        folder.collect(NAME, CAP, "parameters", check)
    (folder.work / NAME).unlink()
    os.mkfifo(folder.work / NAME)
    with pytest.raises(JobError, match="not a regular file"):
        folder.collect(NAME, CAP, "parameters", check)
    (folder.work / NAME).unlink()
    with open(folder.work / NAME, "wb") as sparse:
        sparse.truncate(CAP + 1)
    with pytest.raises(JobError, match=f"larger than {CAP} bytes"):
        folder.collect(NAME, CAP, "parameters", check)
    with pytest.raises(JobError, match="wrote no parameters"):
        folder.collect(result_name("job2"), CAP, "parameters", check)
    assert list(folder.outputs.iterdir()) == []
