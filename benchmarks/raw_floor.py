"""The raw physical floor of a round: its bytes over loopback TCP, one SHA-256 per transfer.

``benchmarks.floor`` times the round's transfers through fedward's own upload server, so
a slower upload server raises its own floor. This floor uses nothing of fedward: the
researcher (this process) and N node processes (real processes, started with
``multiprocessing``'s spawn method, so no GIL is shared) hold one loopback TCP
connection each, opened before the clock, and one round is:

1. the researcher sends the serialised global parameters to every node at once (one
   thread per connection, ``socket.sendall`` of one buffer);
2. each node receives them with ``recv_into`` into a 4 MiB buffer, feeding SHA-256 as
   the bytes arrive (one hash pass: what a receiver must do to trust content-addressed
   bytes), then sends its update - a buffer of the same size, filled when the node
   started, as training would leave it in memory - with one ``sendall``;
3. the researcher receives every update the same way, hashing it as it arrives.

The round ends when the researcher holds every update and its digest. No files, no HTTP,
no serialisation (the bytes are serialised once, outside the clock), no relay: the
least work that moves the round's bytes with the round's concurrency and checks them.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.stats import summary

CHUNK = 4 << 20  # recv_into buffer: large, so each call moves as much as the kernel has
_HEADER = struct.Struct("!Q")
_STOP = (1 << 64) - 1  # a header with this length ends a node


def _recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    while view:
        got = sock.recv_into(view)
        if got == 0:
            raise ConnectionError("peer closed the connection")
        view = view[got:]


def _recv_hashed(sock: socket.socket, size: int, chunk: memoryview) -> bytes:
    """Receive ``size`` bytes through ``chunk``, hashing them as they arrive."""
    digest = hashlib.sha256()
    left = size
    while left:
        got = sock.recv_into(chunk, min(left, len(chunk)))
        if got == 0:
            raise ConnectionError("peer closed the connection")
        digest.update(chunk[:got])  # releases the GIL: other threads keep receiving
        left -= got
    return digest.digest()


def _node_main(port: int, index: int) -> None:
    """A node process: receive the global parameters, hash them, send its update back."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    header = bytearray(_HEADER.size)
    chunk = memoryview(bytearray(CHUNK))
    update: bytearray | None = None
    with sock:
        sock.sendall(_HEADER.pack(index))
        while True:
            _recv_exact_into(sock, memoryview(header))
            (size,) = _HEADER.unpack(header)
            if size == _STOP:
                return
            if update is None or len(update) != size:
                # Real, distinct pages (not the shared zero page), as a trained model is.
                update = bytearray(bytes([index % 251 + 1])) * size
            _recv_hashed(sock, size, chunk)
            sock.sendall(_HEADER.pack(size))
            sock.sendall(update)


class RawNodes:
    """N node processes connected to this process over loopback TCP."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=count)
        port = self._listener.getsockname()[1]
        context = multiprocessing.get_context("spawn")  # fresh interpreters, nothing inherited
        self._processes = [
            context.Process(target=_node_main, args=(port, i), daemon=True) for i in range(count)
        ]
        for process in self._processes:
            process.start()
        self._listener.settimeout(120)
        by_index: dict[int, socket.socket] = {}
        for _ in range(count):
            conn, _addr = self._listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(600)
            index_bytes = bytearray(_HEADER.size)
            _recv_exact_into(conn, memoryview(index_bytes))
            by_index[_HEADER.unpack(index_bytes)[0]] = conn
        self.connections = [by_index[i] for i in range(count)]
        self._chunks = [memoryview(bytearray(CHUNK)) for _ in range(count)]

    def round(self, payload: bytes) -> float:
        """Seconds for one round (see the module docstring)."""
        size = len(payload)
        errors: list[BaseException] = []
        view = memoryview(payload)

        def one(index: int) -> None:
            conn = self.connections[index]
            try:
                conn.sendall(_HEADER.pack(size))
                conn.sendall(view)
                header = bytearray(_HEADER.size)
                _recv_exact_into(conn, memoryview(header))
                if _HEADER.unpack(header)[0] != size:
                    raise ConnectionError("update of the wrong size")
                _recv_hashed(conn, size, self._chunks[index])
            except BaseException as exc:  # re-raised on the researcher's thread
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(self.count)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError("raw floor round failed") from errors[0]
        return elapsed

    def close(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.sendall(_HEADER.pack(_STOP))
            conn.close()
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        self._listener.close()

    def __enter__(self) -> RawNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_raw_floor(payload: bytes, nodes: int, repeats: int) -> dict[str, Any]:
    """One untimed warm-up round (pages faulted in, connections busy once), then
    ``repeats`` timed ones; their median and spread."""
    with RawNodes(nodes) as raw:
        raw.round(payload)
        times = [raw.round(payload) for _ in range(repeats)]
    return {
        "seconds": summary(times),
        "samples": times,
        "bytes_per_round": 2 * nodes * len(payload),
        "method": "loopback TCP, node processes, sendall/recv_into 4 MiB, SHA-256 at receiver",
    }


def _cli(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.raw_floor")
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    payload = bytes(range(256)) * (args.params * 4 // 256)
    result = measure_raw_floor(payload, args.nodes, args.repeats)
    print(result["seconds"])


if __name__ == "__main__":
    _cli()
