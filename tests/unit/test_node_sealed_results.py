"""``sealed_results``: a worker's result taken as a sealed memory file, hashed and checked
where it lies, and every other kind of descriptor a hostile worker could pass refused.
Real memory files and real descriptors; the worker is played by this process."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedward.config.model import JobLimits
from fedward.core.aggregation import Layout
from fedward.errors import JobError
from fedward.node.jobs import wire
from fedward.node.jobs.exchange import WorkerKey
from fedward.node.jobs.isolation import WorkerIsolation
from fedward.node.jobs.results import ResultCheck
from fedward.node.jobs.runner import JobRunner
from fedward.node.jobs.sealed_results import (
    REQUIRED_SEALS,
    sealed_params,
    sealing_unavailable,
    take_result,
    take_sealed,
)
from fedward.protocol.params_wire import MAX_ABS_VALUE, load_params, params_to_bytes

CAP = 64 << 20
CONTROL = "scaffold_delta_control"
F_SEAL_FUTURE_WRITE = 0x0010  # linux/fcntl.h; Python 3.11's fcntl does not name it


def model() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        # Larger than the read's chunk, and not a multiple of it: chunks and tensors
        # do not line up.
        "big": rng.standard_normal(700_001).astype(np.float32),
        "half": rng.standard_normal((3, 5)).astype(np.float16),
        "steps": np.arange(4, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float64),
    }


def layout_of(params: dict[str, np.ndarray]) -> Layout:
    return {name: (a.shape, a.dtype) for name, a in params.items()}


def memory_file(data: bytes, seals: int = REQUIRED_SEALS) -> int:
    fd = os.memfd_create("result", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


@pytest.fixture
def check() -> ResultCheck:
    return ResultCheck(layout_of(model()), "parameters")


@pytest.fixture
def opened() -> Iterator[list[int]]:
    """Descriptors a test made; whatever the code under test left open is closed after."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        if not closed(fd):
            os.close(fd)


def test_the_workers_sealed_file_is_hashed_checked_and_read_by_path(check: ResultCheck) -> None:
    fd = sealed_params(model(), "params")
    data = params_to_bytes(model())
    taken = take_sealed(fd, CAP, "parameters", check)
    try:
        assert taken.sha256 == hashlib.sha256(data).hexdigest()
        assert taken.size == len(data)
        assert taken.path.read_bytes() == data
        copied = load_params(taken.path)
        assert all(np.array_equal(copied[n], a) for n, a in model().items())
    finally:
        taken.close()
    assert closed(fd)


def test_once_sealed_nothing_can_change_the_file(opened: list[int]) -> None:
    # The premise of reading the worker's bytes in place: the kernel's, not ours.
    fd = sealed_params(model(), "params")
    opened.append(fd)
    assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & REQUIRED_SEALS == REQUIRED_SEALS
    with pytest.raises(PermissionError):
        os.pwrite(fd, b"x", 100)
    with pytest.raises(PermissionError):
        os.truncate(fd, 8)
    with pytest.raises(PermissionError):
        mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_WRITE)
    again = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    opened.append(again)
    with pytest.raises(PermissionError):
        os.write(again, b"x")


def test_a_header_not_padded_to_eight_bytes_is_still_read(opened: list[int]) -> None:
    # Another writer's file: tensors at odd offsets, as the format allows.
    values = np.array([1.5, -2.0, 3.25], dtype=np.float32)
    header = json.dumps({"big": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}).encode()
    header += b" "  # 65 bytes: the data starts at an odd offset
    assert len(header) % 8
    data = struct.pack("<Q", len(header)) + header + values.tobytes()
    check = ResultCheck({"big": ((3,), np.dtype(np.float32))}, "parameters")
    taken = take_sealed(memory_file(data), CAP, "parameters", check)
    opened.append(taken.fd)
    assert taken.sha256 == hashlib.sha256(data).hexdigest()


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
def test_a_bad_result_is_refused_and_closed(data: bytes, words: str, check: ResultCheck) -> None:
    fd = memory_file(data)
    with pytest.raises(JobError) as caught:
        take_sealed(fd, CAP, "parameters", check)
    assert words in str(caught.value)
    assert closed(fd)


def test_extras_may_hold_some_of_the_models_tensors(opened: list[int]) -> None:
    params = model()
    check = ResultCheck(layout_of(params), "extra tensors 'c'", subset=True)
    taken = take_sealed(memory_file(params_to_bytes({"big": params["big"]})), CAP, "c", check)
    opened.append(taken.fd)
    with pytest.raises(JobError, match="the job's extra tensors 'c' have tensors the model"):
        take_sealed(memory_file(params_to_bytes({"other": params["big"]})), CAP, "c", check)


def descriptors_a_worker_could_pass(tmp_path: Path) -> dict[str, tuple[int, str]]:
    """Each with the words of its refusal."""
    data = params_to_bytes(model())
    on_disk = tmp_path / "dataset.safetensors"  # the dataset, a file of the node...
    on_disk.write_bytes(data)
    read_end, write_end = os.pipe()
    os.write(write_end, data[:1000])
    os.close(write_end)
    left, right = socket.socketpair()
    right.sendall(data[:1000])
    right.close()
    sparse = memory_file(b"", seals=0)
    os.truncate(sparse, CAP + 1)
    fcntl.fcntl(sparse, fcntl.F_ADD_SEALS, REQUIRED_SEALS)
    not_sealed = "were not sealed against changes"
    return {
        "a file on disk": (os.open(on_disk, os.O_RDONLY), not_sealed),
        "a folder": (os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), "are not a file"),
        "a pipe": (read_end, "are not a file"),
        "a socket": (left.detach(), "are not a file"),
        "an unsealed memory file": (memory_file(data, seals=0), not_sealed),
        # Still writable through a mapping made before the seal: F_SEAL_WRITE is needed.
        "a memory file sealed for future writes only": (
            memory_file(data, seals=F_SEAL_FUTURE_WRITE | fcntl.F_SEAL_SHRINK),
            not_sealed,
        ),
        "a memory file that may shrink": (
            memory_file(data, seals=fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW),
            not_sealed,
        ),
        "a sparse giant": (sparse, f"larger than {CAP} bytes"),
    }


def test_every_other_descriptor_is_refused_unread_and_closed(
    tmp_path: Path, check: ResultCheck
) -> None:
    for what, (fd, words) in descriptors_a_worker_could_pass(tmp_path).items():
        with pytest.raises(JobError) as caught:
            take_sealed(fd, CAP, "parameters", check)
        assert words in str(caught.value), what
        assert closed(fd), what


def test_a_result_takes_its_files_in_order_and_closes_all_on_a_refusal(
    opened: list[int],
) -> None:
    params = model()
    control = {"big": params["big"]}
    files = [sealed_params(params, "params"), sealed_params(control, CONTROL)]
    taken = take_result(files, [CONTROL], CAP, layout_of(params))
    opened.extend(files)
    assert load_params(taken.extras[CONTROL].path).keys() == {"big"}
    assert load_params(taken.params.path).keys() == params.keys()
    taken.close()
    assert all(closed(fd) for fd in files)

    # The extra's check fails: the parameters, already taken, are closed too.
    files = [sealed_params(params, "params"), sealed_params({"x": np.zeros(1)}, CONTROL)]
    with pytest.raises(JobError, match="extra tensors 'scaffold_delta_control' have tensors"):
        take_result(files, [CONTROL], CAP, layout_of(params))
    assert all(closed(fd) for fd in files)

    files = [sealed_params(params, "params"), sealed_params(control, "spare")]
    with pytest.raises(JobError, match="extra tensors 'spare', which no aggregator uses"):
        take_result(files, ["spare"], CAP, layout_of(params))
    assert all(closed(fd) for fd in files)


def test_this_kernel_can_seal_memory_files() -> None:
    assert sealing_unavailable() is None


def test_a_kernel_without_memory_files_is_named_as_the_reason_no_plan_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_memfd(name: str, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    reason = sealing_unavailable()
    assert reason is not None
    assert "memfd_create" in reason and "Linux 3.17" in reason
    # The runner refuses every job with it, instead of a failure blamed on the plan.
    runner = JobRunner(tmp_path / "jobs", JobLimits(), WorkerIsolation.none())
    try:
        assert runner.refusal() == reason
        spec = wire.JobSpec(
            job_id="job-1",
            plan_path="p",
            plan_sha256="0" * 64,
            plan_class="P",
            model_args={},
            training_args={},
            dataset_id="d",
            data_type="csv",
            dataset_path="d",
            params_in="p",
        )
        with pytest.raises(JobError, match="cannot seal the memory files"):
            runner.run(
                WorkerKey("e", "0" * 64, "d"),
                spec,
                dataset=tmp_path,
                deadline_s=5,
                on_scalar=lambda scalar: None,
            )
    finally:
        runner.close()
