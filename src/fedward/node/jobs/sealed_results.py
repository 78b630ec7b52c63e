"""A job's result handed to the daemon as a sealed memory file, checked where it lies.

The worker writes each result into a memory file (``memfd_create``), seals it against
any change (``F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW``) and passes its descriptor
with the result report (``SCM_RIGHTS`` on the report socket). The kernel then vouches
that the bytes can no longer change: ``F_SEAL_WRITE`` cannot be added while a writable
shared mapping exists, and once added no write, mapping, truncation or growth succeeds,
through any descriptor, in any process. So the daemon reads the worker's bytes once,
hashing them (the blob id) and checking their layout and values in the same pass, and
uploads that same file: no copy out of the worker's reach, no file on disk.

Before (a result file in ``work/``, copied to ``outputs/`` because a warm worker could
rewrite it after reporting), per 100 MB on this 2-core VM: the worker's write 24 ms, the
node's copy, hash and check 95 ms. Now: the worker's write into shared memory 44 ms
(its pages cost more to allocate here than ext4's page cache), the node's read, hash
and check 84 ms (the hash is ~70). No faster here; no result touches the disk.

The descriptor is hostile input like the report: it may be a pipe, a socket, the
dataset's file, an unsealed or half-sealed memory file, or a sparse giant. Anything but
a regular file carrying the three seals, within the size cap, is refused (and closed).
The daemon opens it by path (``/proc/self/fd/N``) where code reads files by path (update
codecs, central DP, secure aggregation, the upload); the descriptor stays open until
the job's scratch is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedward.core.aggregation import Layout
from fedward.errors import JobError, ProtocolError
from fedward.node.jobs.results import ALLOWED_EXTRAS, ResultCheck
from fedward.protocol.params_writer import write_params_to
from fedward.protocol.safetensors_header import read_header

REQUIRED_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
_CHUNK = 1 << 20  # a chunk stays in the CPU's cache between the hash and the check


def sealing_unavailable() -> str | None:
    """Why this kernel cannot hand results over as sealed memory files (with the fix), or
    None. ``memfd_create`` and file seals came in Linux 3.17; without them every job's
    result would fail, which would read as the plan's fault."""
    try:
        fd = os.memfd_create("fedward-probe", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (OSError, AttributeError) as exc:
        reason = f"memfd_create: {exc}"
    else:
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, REQUIRED_SEALS)
            return None
        except OSError as exc:
            reason = f"file seals: {exc}"
        finally:
            os.close(fd)
    return (
        f"this node runs no training plans: its kernel cannot seal the memory files that "
        f"carry job results ({reason}; fedward needs Linux 3.17 or later)"
    )


def sealed_params(params: Mapping[str, np.ndarray], name: str) -> int:
    """The worker's side: ``params`` as safetensors in a new memory file, sealed; its
    descriptor (the caller passes it on and closes it)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        write_params_to(fd, params)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, REQUIRED_SEALS | fcntl.F_SEAL_SEAL)
    except BaseException:
        os.close(fd)
        raise
    return fd


def close_descriptors(fds: Iterable[int]) -> None:
    """Close each of ``fds``, whatever it is (descriptors a worker passed, or made)."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass
class SealedResult:
    """A checked result: the daemon's descriptor of the sealed file, and its sha256."""

    fd: int
    sha256: str
    size: int

    @property
    def path(self) -> Path:
        """A path that opens this file, for code that reads by path, while it is open."""
        return Path(f"/proc/self/fd/{self.fd}")

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def take_sealed(fd: int, max_bytes: int, what: str, check: ResultCheck) -> SealedResult:
    """Take ownership of the descriptor ``fd`` a worker passed as its ``what``; the
    checked result, or a ``JobError`` (``fd`` closed) for anything but a sealed regular
    file of at most ``max_bytes`` with the layout and values ``check`` wants."""
    try:
        size = _sealed_size(fd, max_bytes, what)
        sha256 = _hash_and_check(fd, size, check)
    except BaseException:
        os.close(fd)
        raise
    return SealedResult(fd, sha256, size)


def _sealed_size(fd: int, max_bytes: int, what: str) -> int:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise JobError(f"the job's {what} are not a file")
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:  # EINVAL: a file of a file system without seals (the dataset...)
        seals = 0
    if seals & REQUIRED_SEALS != REQUIRED_SEALS:
        raise JobError(f"the job's {what} were not sealed against changes")
    if info.st_size > max_bytes:
        raise JobError(f"the job's {what} are larger than {max_bytes} bytes")
    return info.st_size


def _hash_and_check(fd: int, size: int, check: ResultCheck) -> str:
    """One pass over the file: its sha256, its layout and every value checked."""
    try:
        entries = read_header(fd, size)
    except ProtocolError as exc:
        raise check.invalid(exc) from exc
    check.check_layout({name: (e.shape, e.dtype) for name, e in entries.items()})
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(_CHUNK))
    # The header's check guarantees the tensors follow it without holes up to the end of
    # the file: hashing the head, then each tensor in file order, hashes the whole file.
    ordered = sorted(entries.items(), key=lambda item: item[1].offset)
    data_start = ordered[0][1].offset if ordered else size
    for offset in range(0, data_start, _CHUNK):
        head = buffer[: min(_CHUNK, data_start - offset)]
        _read_exactly(fd, head, offset)
        digest.update(head)
    for name, entry in ordered:
        step = _CHUNK - _CHUNK % entry.dtype.itemsize
        for start in range(0, entry.nbytes, step):
            chunk = buffer[: min(step, entry.nbytes - start)]
            _read_exactly(fd, chunk, entry.offset + start)
            digest.update(chunk)
            check.check_values(name, np.frombuffer(chunk, dtype=entry.dtype))
    return digest.hexdigest()


def _read_exactly(fd: int, view: memoryview, offset: int) -> None:
    # A sealed file cannot shrink: a short read means the kernel broke its promise.
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if count <= 0:
            raise JobError("the job's result ended early although it was sealed")
        done += count


@dataclass
class TakenResult:
    """A job's checked result files: its parameters and its extras, by name."""

    params: SealedResult
    extras: dict[str, SealedResult]

    def close(self) -> None:
        for result in (self.params, *self.extras.values()):
            result.close()


def take_result(files: list[int], extras: list[str], max_bytes: int, layout: Layout) -> TakenResult:
    """Check the descriptors a job's result came with (``files``: its parameters, then
    one per name in ``extras``), each against the model's ``layout``; takes ownership
    of all of them (closed on a ``JobError``)."""
    pending = list(files)
    taken: list[SealedResult] = []
    try:
        for name in extras:
            if name not in ALLOWED_EXTRAS:
                raise JobError(f"the job returned extra tensors {name!r}, which no aggregator uses")
        taken.append(
            take_sealed(pending.pop(0), max_bytes, "parameters", ResultCheck(layout, "parameters"))
        )
        for name in extras:
            check = ResultCheck(layout, f"extra tensors {name!r}", subset=True)
            taken.append(take_sealed(pending.pop(0), max_bytes, f"extra tensors {name!r}", check))
    except BaseException:
        for result in taken:
            result.close()
        close_descriptors(pending)
        raise
    return TakenResult(taken[0], dict(zip(extras, taken[1:], strict=True)))
