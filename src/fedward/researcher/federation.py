"""A researcher's connection to the federation: requests out, replies in.

Replies are routed by ``request_id`` to the call waiting for them. Every wait has a
deadline: a node that does not answer in time is reported as late, never waited for
forever (the seed's researcher hung on a silent node). A node whose presence turns
"offline" (its broker will: the process died or lost its connection) while a request to
it is pending gets an ``ErrorReply`` with code ``node_offline`` at once, so a round does
not wait out its deadline for a node that cannot answer any more.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fedward.core.ids import new_id
from fedward.core.messages import (
    DatasetsReply,
    DatasetSummary,
    ErrorReply,
    ListRequest,
    LogEvent,
    Message,
    NodePresence,
    PingRequest,
    PongReply,
    Reply,
    ScalarEvent,
    SearchRequest,
)
from fedward.errors import ProtocolError
from fedward.protocol import topics
from fedward.protocol.codec import decode_presence, decode_reply, encode
from fedward.transport.blobs import BlobStore
from fedward.transport.channel import Channel

log = logging.getLogger("fedward.researcher")

EventSink = Callable[[str, ScalarEvent | LogEvent], None]


T = TypeVar("T")


@dataclass(frozen=True)
class NodeAnswer:
    node_id: str
    reply: Reply


NODE_OFFLINE = "node_offline"


class PendingRequests:
    """Where replies wait for the call that asked for them."""

    def __init__(self) -> None:
        # request id -> (node asked, or None for a broadcast; the caller's inbox)
        self._queues: dict[str, tuple[str | None, queue.Queue[Any]]] = {}
        self._lock = threading.Lock()

    def open(
        self, requests: Mapping[str, str | None], inbox: queue.Queue[Any] | None = None
    ) -> queue.Queue[Any]:
        inbox = queue.Queue() if inbox is None else inbox
        with self._lock:
            for request_id, node_id in requests.items():
                self._queues[request_id] = (node_id, inbox)
        return inbox

    def close(self, request_ids: Iterable[str]) -> None:
        with self._lock:
            for request_id in request_ids:
                self._queues.pop(request_id, None)

    def deliver(self, answer: NodeAnswer) -> bool:
        with self._lock:
            entry = self._queues.get(answer.reply.request_id)
        if entry is None:
            return False
        entry[1].put(answer)
        return True

    def node_gone(self, node_id: str) -> None:
        """Answer every request pending on ``node_id`` with a ``node_offline`` error."""
        with self._lock:
            waiting = [(r, inbox) for r, (n, inbox) in self._queues.items() if n == node_id]
        for request_id, inbox in waiting:
            error = ErrorReply(
                request_id=request_id,
                code=NODE_OFFLINE,
                message="the node went offline before answering",
            )
            inbox.put(NodeAnswer(node_id, error))


class Federation:
    """Talk to nodes. Owns neither the channel's nor the blob store's life unless told to."""

    def __init__(
        self,
        researcher_id: str,
        channel: Channel,
        blobs: BlobStore,
        *,
        max_message_bytes: int = 1 << 20,
        state_dir: Path | None = None,
    ) -> None:
        self.researcher_id = researcher_id
        self.blobs = blobs
        #: Where experiments keep checkpoints by default (the researcher config's state_dir).
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._channel = channel
        self._max_bytes = max_message_bytes
        self._pending = PendingRequests()
        self._presence: dict[str, NodePresence] = {}
        self._presence_seen_at = 0.0  # monotonic time of the last presence message
        self._presence_lock = threading.Lock()
        self._event_sinks: list[EventSink] = []
        for topic_filter in topics.researcher_subscriptions(researcher_id):
            channel.subscribe(topic_filter, self._on_reply)
        channel.subscribe(topics.PRESENCE_FILTER, self._on_presence)
        self._closers: list[Callable[[], None]] = []

    # --- inbound --------------------------------------------------------------------

    def _on_reply(self, topic: str, payload: bytes) -> None:
        try:
            node_id = topics.sender_of_reply(topic, self.researcher_id)
            reply = decode_reply(payload, self._max_bytes)
        except (ProtocolError, ValueError) as exc:
            log.warning("ignoring an invalid reply on %s: %s", topic, exc)
            return
        if isinstance(reply, (ScalarEvent, LogEvent)):
            for sink in list(self._event_sinks):
                try:
                    sink(node_id, reply)
                except Exception:
                    log.exception("event sink failed")
            return
        if not self._pending.deliver(NodeAnswer(node_id, reply)):
            log.debug("late or unexpected reply %s from %s", reply.request_id, node_id)

    def _on_presence(self, topic: str, payload: bytes) -> None:
        try:
            node_id = topics.node_of_presence(topic)
            presence = decode_presence(payload)
        except (ProtocolError, ValueError):
            return
        with self._presence_lock:
            previous = self._presence.get(node_id)
            # "offline" speaks only for the instance that said it: the late will of a
            # restarted node, or the presence check of a refused duplicate, must not
            # take down the instance that is online now.
            if (
                presence.state == "offline"
                and previous is not None
                and previous.state == "online"
                and previous.instance_id != presence.instance_id
            ):
                return
            self._presence[node_id] = presence
            self._presence_seen_at = time.monotonic()
        if presence.state == "offline" and (previous is None or previous.state == "online"):
            self._pending.node_gone(node_id)

    def add_event_sink(self, sink: EventSink) -> None:
        self._event_sinks.append(sink)

    def remove_event_sink(self, sink: EventSink) -> None:
        if sink in self._event_sinks:
            self._event_sinks.remove(sink)

    def online_nodes(self) -> list[str]:
        with self._presence_lock:
            return sorted(n for n, p in self._presence.items() if p.state == "online")

    def settle_presence(self, timeout_s: float = 1.0, quiet_s: float = 0.2) -> None:
        """Wait (at most ``timeout_s``) for the broker's retained presence messages, which
        arrive in a burst just after connecting: until some arrived and none came for
        ``quiet_s``. Then ``broadcast`` knows whom to wait for from the first call."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._presence_lock:
                seen_at = self._presence_seen_at
            if seen_at and time.monotonic() - seen_at >= quiet_s:
                return
            time.sleep(0.02)

    def offline_nodes(self) -> list[str]:
        """Nodes whose last presence said offline (nodes never heard of are in neither list)."""
        with self._presence_lock:
            return sorted(n for n, p in self._presence.items() if p.state == "offline")

    # --- outbound -------------------------------------------------------------------

    def new_request_id(self) -> str:
        return new_id("req")

    def send(self, node_id: str | None, message: Message) -> None:
        """To one node, or to every node when ``node_id`` is None."""
        topic = (
            topics.broadcast_topic(self.researcher_id)
            if node_id is None
            else topics.node_topic(node_id, self.researcher_id)
        )
        self._channel.publish(topic, encode(message))

    def ask(self, requests: Mapping[str, Message], timeout_s: float) -> Iterator[NodeAnswer]:
        """Send one request per node; yield answers as they come, until all or the deadline."""
        inbox: queue.Queue[NodeAnswer] = queue.Queue()
        return self.ask_interleaved(requests, timeout_s, inbox)

    def ask_interleaved(
        self, requests: Mapping[str, Message], timeout_s: float, inbox: queue.Queue[NodeAnswer | T]
    ) -> Iterator[NodeAnswer | T]:
        """``ask``, with answers delivered into the caller's ``inbox``: whatever else the
        caller puts there (its own threads' news) is yielded too, in arrival order, so
        one thread can wait for both without polling."""
        by_id = {m.request_id: node for node, m in requests.items()}
        self._pending.open(dict(by_id), inbox)
        try:
            for node_id, message in requests.items():
                self.send(node_id, message)
            yield from self._collect(inbox, by_id, timeout_s, expect=set(requests))
        finally:
            self._pending.close(by_id)

    def broadcast(self, message: Message, timeout_s: float) -> list[NodeAnswer]:
        """Ask every node; gather answers until every node known to be online answered,
        or ``timeout_s`` passed (a node may be online without our having seen it yet)."""
        online = set(self.online_nodes())
        inbox: queue.Queue[NodeAnswer] = self._pending.open({message.request_id: None})
        try:
            self.send(None, message)
            return [
                a
                for a in self._collect(inbox, None, timeout_s, expect=online or None)
                if isinstance(a, NodeAnswer)
            ]
        finally:
            self._pending.close([message.request_id])

    def _collect(
        self,
        inbox: queue.Queue[NodeAnswer | T],
        by_id: dict[str, str] | None,
        timeout_s: float,
        expect: set[str] | None,
    ) -> Iterator[NodeAnswer | T]:
        """Answers until every node in ``expect`` answered (others may answer too), or the
        deadline; with ``expect`` None, until the deadline."""
        deadline = time.monotonic() + timeout_s
        answered: set[str] = set()
        while expect is None or not expect <= answered:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                answer = inbox.get(timeout=remaining)
            except queue.Empty:
                return
            if not isinstance(answer, NodeAnswer):
                yield answer  # the caller's own
                continue
            # A node may only answer the request that was sent to it.
            if by_id is not None and by_id.get(answer.reply.request_id) != answer.node_id:
                log.warning("ignoring a reply from %s to a request sent elsewhere", answer.node_id)
                continue
            if answer.node_id in answered:
                continue
            answered.add(answer.node_id)
            yield answer

    # --- conveniences -----------------------------------------------------------------

    def ping(self, timeout_s: float = 2.0) -> dict[str, PongReply]:
        answers = self.broadcast(PingRequest(request_id=self.new_request_id()), timeout_s)
        return {a.node_id: a.reply for a in answers if isinstance(a.reply, PongReply)}

    def search(self, tags: list[str], timeout_s: float = 3.0) -> dict[str, list[DatasetSummary]]:
        """Datasets carrying all ``tags``, per node that has at least one."""
        answers = self.broadcast(
            SearchRequest(request_id=self.new_request_id(), tags=tags), timeout_s
        )
        found: dict[str, list[DatasetSummary]] = {}
        for answer in answers:
            if isinstance(answer.reply, DatasetsReply) and answer.reply.datasets:
                found[answer.node_id] = list(answer.reply.datasets)
            elif isinstance(answer.reply, ErrorReply):
                log.warning("node %s could not search: %s", answer.node_id, answer.reply.message)
        return found

    def list_datasets(self, timeout_s: float = 3.0) -> dict[str, list[DatasetSummary]]:
        answers = self.broadcast(ListRequest(request_id=self.new_request_id()), timeout_s)
        return {
            a.node_id: list(a.reply.datasets) for a in answers if isinstance(a.reply, DatasetsReply)
        }

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            closer()
