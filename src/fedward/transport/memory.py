"""In-process implementations of ``Channel`` and ``BlobStore`` for unit tests.

They keep the contracts of the real ones (own delivery thread per channel, wills,
readers, hash checks), so node and researcher logic can be tested without patching.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from fedward.errors import AccessDenied, IntegrityError, NotFound, TransportError
from fedward.protocol.topics import topic_matches
from fedward.storage.atomic import atomic_write_bytes
from fedward.transport.blobs import blob_too_large, check_max_bytes
from fedward.transport.channel import Handler, Will


class MemoryBroker:
    """Routes messages between ``MemoryChannel`` objects; keeps retained messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: list[MemoryChannel] = []
        self._retained: dict[str, bytes] = {}

    def connect(self, client_id: str, will: Will | None = None) -> MemoryChannel:
        channel = MemoryChannel(self, client_id, will)
        with self._lock:
            self._channels.append(channel)
        return channel

    def _route(self, topic: str, payload: bytes, retain: bool) -> None:
        with self._lock:
            if retain:
                if payload:
                    self._retained[topic] = payload
                else:
                    self._retained.pop(topic, None)
            channels = list(self._channels)
        for channel in channels:
            channel._offer(topic, payload)

    def _retained_for(self, topic_filter: str) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(t, p) for t, p in self._retained.items() if topic_matches(topic_filter, t)]

    def _drop(self, channel: MemoryChannel, *, publish_will: bool) -> None:
        with self._lock:
            if channel in self._channels:
                self._channels.remove(channel)
        if publish_will and channel.will is not None:
            self._route(channel.will.topic, channel.will.payload, channel.will.retain)


class MemoryChannel:
    def __init__(self, broker: MemoryBroker, client_id: str, will: Will | None) -> None:
        self.client_id = client_id
        self.will = will
        self._broker = broker
        self._subscriptions: list[tuple[str, Handler]] = []
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._deliver, name=f"mem-{client_id}", daemon=True)
        self._thread.start()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        self._subscriptions.append((topic_filter, handler))
        for topic, payload in self._broker._retained_for(topic_filter):
            self._inbox.put((topic, payload))

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._closed:
            raise TransportError(f"channel {self.client_id} is closed")
        self._broker._route(topic, payload, retain)

    def _offer(self, topic: str, payload: bytes) -> None:
        if any(topic_matches(f, topic) for f, _ in self._subscriptions):
            self._inbox.put((topic, payload))

    def _deliver(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            topic, payload = item
            for topic_filter, handler in list(self._subscriptions):
                if topic_matches(topic_filter, topic):
                    handler(topic, payload)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._broker._drop(self, publish_will=False)
            self._inbox.put(None)

    def crash(self) -> None:
        """Vanish without closing: the broker publishes our will (for fault tests)."""
        if not self._closed:
            self._closed = True
            self._broker._drop(self, publish_will=True)
            self._inbox.put(None)


class MemoryBlobStore:
    """A shared in-memory blob space; ``as_peer`` gives one peer's view of it."""

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def as_peer(self, peer_id: str) -> MemoryBlobClient:
        return MemoryBlobClient(self, peer_id)


class MemoryBlobClient:
    def __init__(self, space: MemoryBlobStore, peer_id: str) -> None:
        self._space = space
        self.peer_id = peer_id

    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str:
        blob_id = hashlib.sha256(data).hexdigest()
        with self._space._lock:
            old = self._space._blobs.get(blob_id)
            allowed = frozenset(readers) | {self.peer_id}
            if old is not None:
                allowed |= old[1]
            self._space._blobs[blob_id] = (bytes(data), allowed)
        return blob_id

    def put_file(
        self,
        path: Path,
        readers: Sequence[str],
        *,
        blob_id: str | None = None,
        on_accepted: Callable[[], object] | None = None,
    ) -> str:
        stored = self.put_bytes(path.read_bytes(), readers)
        if blob_id is not None and blob_id != stored:
            raise IntegrityError(f"{path.name} hashes to {stored}, not {blob_id}")
        if on_accepted is not None:
            on_accepted()
        return stored

    def get_bytes(self, blob_id: str, *, max_bytes: int | None = None) -> bytes:
        check_max_bytes(max_bytes)
        with self._space._lock:
            entry = self._space._blobs.get(blob_id)
        if entry is None or self.peer_id not in entry[1]:
            raise NotFound(f"blob {blob_id} not found")
        if max_bytes is not None and len(entry[0]) > max_bytes:
            raise blob_too_large(blob_id, max_bytes)
        return entry[0]

    def get_file(
        self, blob_id: str, dest: Path, *, max_bytes: int | None = None, durable: bool = True
    ) -> Path:
        atomic_write_bytes(dest, self.get_bytes(blob_id, max_bytes=max_bytes), durable=durable)
        return dest

    def confirm_kept(self, blob_id: str) -> None:
        """Nothing to count: this store deletes nothing."""

    def offer_again(self, blob_id: str) -> bool:
        with self._space._lock:
            entry = self._space._blobs.get(blob_id)
        return entry is not None and self.peer_id in entry[1]

    def deny(self) -> None:  # pragma: no cover - symmetry with the HTTP client's errors
        raise AccessDenied("no credentials")
