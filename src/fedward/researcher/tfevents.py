"""TensorBoard event files, written without TensorFlow, TensorBoard or protobuf.

An event file is a sequence of TFRecords: ``uint64 length``, ``uint32 masked CRC-32C of
the length``, the payload, ``uint32 masked CRC-32C of the payload`` (little endian). Each
payload is an ``Event`` protocol buffer; the few fields a scalar needs are encoded by hand:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
              Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }

TensorBoard reads these like the files its own ``SummaryWriter`` makes (the tests read
them back with TensorBoard's ``EventAccumulator``). The researcher then needs TensorBoard
only to look at them, not to run an experiment.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import threading
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", masked_crc(length))
        + payload
        + struct.pack("<I", masked_crc(payload))
    )


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 as protobuf encodes it
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_delimited(field_number: int, data: bytes) -> bytes:
    return _varint(field_number << 3 | 2) + _varint(len(data)) + data


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    summary_value = _length_delimited(1, tag.encode("utf-8")) + b"\x15" + struct.pack("<f", value)
    summary = _length_delimited(1, summary_value)
    return (
        b"\x09"
        + struct.pack("<d", wall_time)
        + b"\x10"
        + _varint(step)
        + _length_delimited(5, summary)
    )


def version_event(wall_time: float) -> bytes:
    return b"\x09" + struct.pack("<d", wall_time) + _length_delimited(3, b"brain.Event:2")


_serial = itertools.count()


class EventFileWriter:
    """One event file in ``logdir`` (created on first use), appended and flushed per scalar."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)
        self._lock = threading.Lock()
        self.path: Path | None = None

    def _open(self) -> Path:
        if self.path is None:
            self.logdir.mkdir(parents=True, exist_ok=True)
            now = time.time()
            name = (
                f"events.out.tfevents.{int(now)}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_serial)}"
            )
            self.path = self.logdir / name
            with self.path.open("ab") as handle:
                handle.write(tfrecord(version_event(now)))
        return self.path

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        record = tfrecord(scalar_event(tag, float(value), int(step), wall_time or time.time()))
        with self._lock, self._open().open("ab") as handle:
            handle.write(record)
