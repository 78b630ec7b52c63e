"""A tiny node for the researcher's unit tests, speaking the real protocol.

It subscribes to its topics (``protocol.topics``), decodes requests and encodes replies
with the real codec, reads and writes parameters through the blob store as safetensors,
and announces its presence with a will, over the in-memory channel. What it does with a
train request is a plain function, so each test chooses how the node "trains".
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fedward.core.messages import (
    DatasetsReply,
    DatasetSummary,
    ErrorReply,
    ListRequest,
    Message,
    NodePresence,
    PingRequest,
    PongReply,
    Request,
    SearchRequest,
    TrainReply,
    TrainRequest,
)
from fedward.core.params import Params
from fedward.errors import TransportError
from fedward.protocol import topics
from fedward.protocol.codec import decode_request, encode, encode_presence
from fedward.protocol.params_wire import params_from_bytes, params_to_bytes
from fedward.transport.channel import Will
from fedward.transport.memory import MemoryBlobStore, MemoryBroker

Training = Callable[[Params], Params]


def add(amount: float) -> Training:
    return lambda params: {name: value + amount for name, value in params.items()}


@dataclass
class NodeBehaviour:
    """How the fake node answers a train request."""

    train: Training = field(default_factory=lambda: add(1.0))
    sample_count: int = 10
    metrics: dict[str, float] = field(default_factory=dict)
    silent: bool = False  # never answers train requests
    delay_s: float = 0.0  # answers train requests this late (from another thread)
    reply_delay_s: float = 0.0  # answers ping, search and list requests this late
    error: tuple[str, str] | None = None  # (code, message): answers with an ErrorReply


class FakeNode:
    def __init__(
        self,
        broker: MemoryBroker,
        blob_space: MemoryBlobStore,
        node_id: str,
        *,
        tags: list[str] | None = None,
        behaviour: NodeBehaviour | None = None,
        announce: bool = True,
    ) -> None:
        self.node_id = node_id
        self.behaviour = behaviour or NodeBehaviour()
        self.dataset = DatasetSummary(
            dataset_id=f"ds-{node_id}",
            name=f"data of {node_id}",
            data_type="csv",
            tags=tags if tags is not None else ["toy"],
            sample_count=self.behaviour.sample_count,
        )
        self.received: list[tuple[str, Request]] = []
        self.received_params: list[Params] = []
        self.blobs = blob_space.as_peer(node_id)
        self._presence = topics.presence_topic(node_id)
        offline = encode_presence(NodePresence(state="offline", instance_id=f"i-{node_id}"))
        self.channel = broker.connect(f"node-{node_id}", Will(self._presence, offline))
        self._timers: list[threading.Timer] = []
        for topic_filter in topics.node_subscriptions(node_id):
            self.channel.subscribe(topic_filter, self._on_request)
        if announce:
            self.announce("online")

    def announce(self, state: str) -> None:
        presence = NodePresence(state=state, instance_id=f"i-{self.node_id}")  # type: ignore[arg-type]
        self.channel.publish(self._presence, encode_presence(presence), retain=True)

    def reply(self, researcher_id: str, message: Message) -> None:
        # A late answer may find the channel closed already: nobody waits for it any more.
        with contextlib.suppress(TransportError):
            self.channel.publish(topics.reply_topic(researcher_id, self.node_id), encode(message))

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.channel.close()

    # --- requests --------------------------------------------------------------------

    def _on_request(self, topic: str, payload: bytes) -> None:
        researcher_id = topics.sender_of_request(topic, self.node_id)
        request = decode_request(payload)
        self.received.append((researcher_id, request))
        if isinstance(request, TrainRequest):
            self._on_train(researcher_id, request)
            return
        answer: Message
        if isinstance(request, PingRequest):
            answer = PongReply(request_id=request.request_id, version="fake")
        elif isinstance(request, SearchRequest):
            found = [self.dataset] if set(request.tags) <= set(self.dataset.tags) else []
            answer = DatasetsReply(request_id=request.request_id, datasets=found)
        elif isinstance(request, ListRequest):
            answer = DatasetsReply(request_id=request.request_id, datasets=[self.dataset])
        else:
            return
        self._answer(researcher_id, answer, self.behaviour.reply_delay_s)

    def _on_train(self, researcher_id: str, request: TrainRequest) -> None:
        behaviour = self.behaviour
        if behaviour.silent:
            return
        if behaviour.error is not None:
            code, message = behaviour.error
            self.reply(
                researcher_id, ErrorReply(request_id=request.request_id, code=code, message=message)
            )
            return
        params = params_from_bytes(self.blobs.get_bytes(request.params_blob))
        self.received_params.append(params)
        trained = {name: np.asarray(value) for name, value in behaviour.train(params).items()}
        blob_id = self.blobs.put_bytes(params_to_bytes(trained), readers=[researcher_id])
        answer = TrainReply(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            params_blob=blob_id,
            sample_count=behaviour.sample_count,
            metrics=behaviour.metrics,
        )
        self._answer(researcher_id, answer, behaviour.delay_s)

    def _answer(self, researcher_id: str, answer: Message, delay_s: float) -> None:
        if delay_s <= 0:
            self.reply(researcher_id, answer)
            return
        timer = threading.Timer(delay_s, self.reply, (researcher_id, answer))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def train_requests(self) -> list[TrainRequest]:
        return [r for _, r in self.received if isinstance(r, TrainRequest)]
