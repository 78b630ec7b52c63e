"""A TCP proxy that injects faults between clients and a service (broker, upload server).

    proxy = ChaosProxy("127.0.0.1", broker_port, mqtt=True).start()
    proxy.faults.duplicate = 0.1     # per MQTT PUBLISH
    proxy.cut()                      # drop every open connection now
    with proxy.stalled(): ...        # nothing passes in either direction meanwhile

Faults, set at any time on ``proxy.faults`` (each direction of each connection reads
them as bytes arrive):

- ``delay_s``: hold every chunk (or MQTT packet) this long before passing it on;
- ``bytes_per_s``: a bandwidth cap, so a transfer lasts long enough to be cut inside;
- ``drop``, ``duplicate``, ``reorder``: probabilities per MQTT PUBLISH packet. A
  duplicate is sent twice; a reordered one is held until the next PUBLISH *on another
  topic* passed it (or ``hold_s`` elapsed): MQTT keeps order per topic, not across
  topics, so this is the reordering a correct broker may do;
- ``cut()``: close every connection (clients see the service vanish, it stays up);
- ``stalled()``: a period in which nothing is forwarded (a frozen network path).

With ``mqtt=True`` the byte stream is split into MQTT packets (fixed header and
remaining length), so faults hit whole messages and never corrupt the framing; other
traffic (HTTP) is passed on in chunks. ``stats`` counts what was done. Randomness comes
from ``seed``, so a scenario injects the same faults for the same traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

PUBLISH = 3
_CHUNK = 64 * 1024


@dataclass
class Faults:
    delay_s: float = 0.0
    bytes_per_s: float | None = None
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    hold_s: float = 0.2


@dataclass
class Stats:
    connections: int = 0
    publishes: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    cuts: int = 0
    bytes_up: int = 0  # client -> service
    bytes_down: int = 0  # service -> client
    by_topic: dict[str, int] = field(default_factory=dict)


class ChaosProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        mqtt: bool = False,
        host: str = "127.0.0.1",
        seed: int = 0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.mqtt = mqtt
        self.faults = Faults()
        self.stats = Stats()
        self._random = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> ChaosProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._accept, self.host, 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the chaos proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._running.set()
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_all()

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults that act at once ---------------------------------------------------------

    def cut(self) -> None:
        """Close every open connection, both sides."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_all)
        self.stats.cuts += 1

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        self._running.clear()
        try:
            yield
        finally:
            self._running.set()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    # --- forwarding ----------------------------------------------------------------------

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            service_r, service_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self.stats.connections += 1
        self._writers.update((client_w, service_w))
        up = asyncio.ensure_future(self._pump(client_r, service_w, up=True))
        down = asyncio.ensure_future(self._pump(service_r, client_w, up=False))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_w, service_w):
            writer.close()
            self._writers.discard(writer)
        for task in (up, down):
            task.cancel()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
    ) -> None:
        # A PUBLISH held back so that a later one overtakes it; released by the next
        # PUBLISH on another topic, or by a timer (whole-packet writes, never mid-read).
        held: list[tuple[bytes, str]] = []
        loop = asyncio.get_running_loop()

        def release() -> None:
            while held:
                unit, _ = held.pop()
                writer.write(unit)
                self._count(len(unit), up)

        try:
            while True:
                unit = await self._read_unit(reader)
                if unit == b"":
                    release()
                    return
                topic = self._publish_topic(unit)
                if topic is None:
                    await self._send(writer, unit, up)
                    continue
                self.stats.publishes += 1
                self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
                faults, roll = self.faults, self._random.random
                if roll() < faults.drop:
                    self.stats.dropped += 1
                    continue
                copies = 2 if roll() < faults.duplicate else 1
                self.stats.duplicated += copies - 1
                overtakes = bool(held) and held[0][1] != topic
                if held and not overtakes:
                    release()  # same topic: MQTT keeps their order, so do we
                if not held and roll() < faults.reorder:
                    held.append((unit, topic))
                    loop.call_later(faults.hold_s, release)
                    copies -= 1  # a duplicate, if any, goes now; the original waits
                for _ in range(copies):
                    await self._send(writer, unit, up)
                if overtakes:
                    self.stats.reordered += 1
                    release()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            return

    async def _read_unit(self, reader: asyncio.StreamReader) -> bytes:
        """The next MQTT packet, or the next chunk of other traffic; b"" at the end."""
        if not self.mqtt:
            return await reader.read(_CHUNK)
        first = await reader.read(1)
        if not first:
            return b""
        header = bytearray(first)
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            header.append(byte)
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return bytes(header) + await reader.readexactly(length)

    def _publish_topic(self, unit: bytes) -> str | None:
        if not self.mqtt or not unit or unit[0] >> 4 != PUBLISH:
            return None
        offset = 1
        while unit[offset] & 0x80:
            offset += 1
        offset += 1
        size = int.from_bytes(unit[offset : offset + 2], "big")
        return unit[offset + 2 : offset + 2 + size].decode("utf-8", "replace")

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, up: bool) -> None:
        while not self._running.is_set():
            await asyncio.sleep(0.01)
        faults = self.faults
        if faults.delay_s:
            await asyncio.sleep(faults.delay_s)
        if faults.bytes_per_s:
            for start in range(0, len(data), 16 * 1024):
                piece = data[start : start + 16 * 1024]
                writer.write(piece)
                await writer.drain()
                self._count(len(piece), up)
                await asyncio.sleep(len(piece) / faults.bytes_per_s)
            return
        writer.write(data)
        await writer.drain()
        self._count(len(data), up)

    def _count(self, size: int, up: bool) -> None:
        if up:
            self.stats.bytes_up += size
        else:
            self.stats.bytes_down += size
