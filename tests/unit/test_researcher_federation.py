from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator

import pytest

from fedward.core.messages import (
    LogEvent,
    Message,
    NodePresence,
    PingRequest,
    PongReply,
    ScalarEvent,
)
from fedward.protocol import topics
from fedward.protocol.codec import decode_request, encode, encode_presence
from fedward.researcher.federation import Federation, NodeAnswer
from fedward.transport.memory import MemoryBlobStore, MemoryBroker, MemoryChannel
from tests.waiting import eventually

from .researcher_fake_node import FakeNode, NodeBehaviour

RESEARCHER = "alice"


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def blob_space() -> MemoryBlobStore:
    return MemoryBlobStore()


@pytest.fixture
def federation(broker: MemoryBroker, blob_space: MemoryBlobStore) -> Iterator[Federation]:
    channel = broker.connect("researcher-alice")
    fed = Federation(RESEARCHER, channel, blob_space.as_peer(RESEARCHER))
    fed.on_close(channel.close)
    yield fed
    fed.close()


@pytest.fixture
def nodes(broker: MemoryBroker, blob_space: MemoryBlobStore) -> Iterator[dict[str, FakeNode]]:
    made = {n: FakeNode(broker, blob_space, n) for n in ("node1", "node2", "node3")}
    yield made
    for node in made.values():
        node.close()


class Impostor:
    """A peer publishing on ``as_node``'s reply topic: what the broker's ACL lets that node do.

    With ``eavesdrop`` it also sees the requests sent to that other node (as if it had
    guessed their ids) and calls ``on_request`` with each, while the researcher waits.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        as_node: str,
        eavesdrop: str | None = None,
        on_request: Callable[[Impostor, PingRequest], None] | None = None,
    ) -> None:
        self.as_node = as_node
        self.channel: MemoryChannel = broker.connect(f"impostor-{as_node}")
        if eavesdrop is not None and on_request is not None:
            handler = on_request

            def overheard(topic: str, payload: bytes) -> None:
                request = decode_request(payload)
                assert isinstance(request, PingRequest)
                handler(self, request)

            self.channel.subscribe(topics.node_topic(eavesdrop, RESEARCHER), overheard)

    def send(self, message: Message, researcher_id: str = RESEARCHER) -> None:
        self.channel.publish(topics.reply_topic(researcher_id, self.as_node), encode(message))


def forge_pong(impostor: Impostor, request: PingRequest) -> None:
    impostor.send(PongReply(request_id=request.request_id, version="forged"))


def pong_twice(impostor: Impostor, request: PingRequest) -> None:
    impostor.send(PongReply(request_id=request.request_id, version="1"))
    impostor.send(PongReply(request_id=request.request_id, version="1"))


def pings(*node_ids: str) -> dict[str, Message]:
    return {n: PingRequest(request_id=f"req-{n}-{i}") for i, n in enumerate(node_ids)}


# --- request / reply routing ------------------------------------------------------------


def test_each_node_answers_the_request_sent_to_it(
    federation: Federation, nodes: dict[str, FakeNode]
) -> None:
    requests = pings("node1", "node2", "node3")
    answers = list(federation.ask(requests, timeout_s=5.0))
    assert sorted(a.node_id for a in answers) == ["node1", "node2", "node3"]
    for answer in answers:
        assert isinstance(answer.reply, PongReply)
        assert answer.reply.request_id == requests[answer.node_id].request_id
    # Each node got only its own request, and learnt the sender from the topic.
    for node_id, node in nodes.items():
        assert node.received == [(RESEARCHER, requests[node_id])]


def test_concurrent_calls_each_get_their_own_replies(
    federation: Federation, nodes: dict[str, FakeNode]
) -> None:
    results: dict[str, list[NodeAnswer]] = {}

    def call(name: str, node_ids: tuple[str, ...]) -> None:
        requests: dict[str, Message] = {n: PingRequest(request_id=f"{name}-{n}") for n in node_ids}
        results[name] = list(federation.ask(requests, timeout_s=5.0))

    threads = [
        threading.Thread(target=call, args=("first", ("node1", "node2"))),
        threading.Thread(target=call, args=("second", ("node2", "node3"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, expected in (("first", ["node1", "node2"]), ("second", ["node2", "node3"])):
        assert sorted(a.node_id for a in results[name]) == expected
        assert all(a.reply.request_id == f"{name}-{a.node_id}" for a in results[name])


@pytest.mark.timeout(30)
def test_a_reply_from_another_node_to_a_request_it_was_not_sent_is_ignored(
    federation: Federation, broker: MemoryBroker
) -> None:
    # node1 never answers; node2 overhears node1's request and answers it on its own topic.
    Impostor(broker, as_node="node2", eavesdrop="node1", on_request=forge_pong)
    assert list(federation.ask(pings("node1"), timeout_s=0.5)) == []


def test_a_forged_reply_does_not_stop_the_real_one_from_arriving(
    federation: Federation, nodes: dict[str, FakeNode], broker: MemoryBroker
) -> None:
    Impostor(broker, as_node="node2", eavesdrop="node1", on_request=forge_pong)
    requests = pings("node1")
    answers = list(federation.ask(requests, timeout_s=5.0))
    assert [(a.node_id, a.reply) for a in answers] == [
        ("node1", PongReply(request_id=requests["node1"].request_id, version="fake"))
    ]


def test_replies_on_another_researchers_topic_never_reach_us(
    federation: Federation, broker: MemoryBroker, nodes: dict[str, FakeNode]
) -> None:
    requests = pings("node1")
    Impostor(broker, as_node="node1").send(
        PongReply(request_id=requests["node1"].request_id, version="for bob"), researcher_id="bob"
    )
    answers = list(federation.ask(requests, timeout_s=5.0))
    assert [a.reply for a in answers] == [
        PongReply(request_id=requests["node1"].request_id, version="fake")
    ]


@pytest.mark.timeout(30)
def test_a_silent_node_makes_ask_return_at_the_deadline(
    federation: Federation, broker: MemoryBroker, blob_space: MemoryBlobStore
) -> None:
    answering = FakeNode(broker, blob_space, "node1")
    silent = FakeNode(broker, blob_space, "node2")
    silent.channel.close()
    timeout_s = 0.3
    started = time.monotonic()
    answers = list(federation.ask(pings("node1", "node2"), timeout_s=timeout_s))
    waited = time.monotonic() - started
    assert [a.node_id for a in answers] == ["node1"]
    assert waited >= timeout_s  # it waited for node2 until the deadline, and then returned
    answering.close()


def test_answers_are_yielded_as_they_come_not_at_the_deadline(
    federation: Federation, nodes: dict[str, FakeNode], broker: MemoryBroker
) -> None:
    nodes["node2"].channel.close()
    answers = federation.ask(pings("node1", "node2"), timeout_s=30.0)
    first = next(answers)  # returns once node1 answered, long before the 30 s deadline
    assert first.node_id == "node1"
    assert isinstance(answers, Generator)
    answers.close()  # the caller may stop early; pending ids are released


def test_a_node_answering_twice_is_counted_once(
    federation: Federation, broker: MemoryBroker
) -> None:
    Impostor(broker, as_node="node1", eavesdrop="node1", on_request=pong_twice)
    requests = pings("node1")
    answers = list(federation.ask(requests, timeout_s=0.5))
    assert answers == [
        NodeAnswer("node1", PongReply(request_id=requests["node1"].request_id, version="1"))
    ]


def test_broadcast_gathers_whoever_answers_before_the_deadline(
    federation: Federation, nodes: dict[str, FakeNode]
) -> None:
    # A broadcast may stop early once every node known to be online answered: let the
    # presence messages arrive first, as they would long before a researcher's first call.
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2", "node3"])
    assert sorted(federation.ping(timeout_s=1.0)) == ["node1", "node2", "node3"]


@pytest.mark.timeout(30)
def test_broadcast_waits_for_every_node_known_online_even_if_an_unknown_node_answers_first(
    federation: Federation, broker: MemoryBroker, blob_space: MemoryBlobStore
) -> None:
    made = [
        FakeNode(broker, blob_space, "node1"),
        FakeNode(broker, blob_space, "node2", behaviour=NodeBehaviour(reply_delay_s=0.3)),
    ]
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2"])
    # Online, but its presence not seen yet: it answers before node2 does.
    made.append(FakeNode(broker, blob_space, "node3", announce=False))
    answered = federation.ping(timeout_s=5.0)
    assert {"node1", "node2"} <= set(answered)
    for node in made:
        node.close()


def test_search_returns_only_nodes_with_all_the_tags(
    federation: Federation, broker: MemoryBroker, blob_space: MemoryBlobStore
) -> None:
    made = [
        FakeNode(broker, blob_space, "node1", tags=["mnist", "train"]),
        FakeNode(broker, blob_space, "node2", tags=["mnist"]),
        FakeNode(broker, blob_space, "node3", tags=["cifar", "train"]),
    ]
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2", "node3"])
    found = federation.search(["mnist", "train"], timeout_s=1.0)
    assert list(found) == ["node1"]
    assert found["node1"][0].dataset_id == "ds-node1"
    for node in made:
        node.close()


def test_invalid_replies_are_dropped_without_breaking_the_call(
    federation: Federation, broker: MemoryBroker, nodes: dict[str, FakeNode]
) -> None:
    impostor = Impostor(broker, as_node="node1")
    for junk in (b"{", b"[]", b'{"protocol": 9, "type": "pong_reply"}', b"x" * (2 << 20)):
        impostor.channel.publish(topics.reply_topic(RESEARCHER, "node1"), junk)
    answers = list(federation.ask(pings("node1"), timeout_s=5.0))
    assert [a.node_id for a in answers] == ["node1"]


def test_progress_events_go_to_the_sinks_not_to_the_waiting_call(
    federation: Federation, broker: MemoryBroker
) -> None:
    seen: list[tuple[str, ScalarEvent | LogEvent]] = []

    def broken_sink(node_id: str, event: ScalarEvent | LogEvent) -> None:
        raise RuntimeError("a monitoring bug")

    federation.add_event_sink(broken_sink)  # contained: the next sinks still run
    federation.add_event_sink(lambda node_id, event: seen.append((node_id, event)))
    event = ScalarEvent(
        request_id="r1", experiment_id="e", round_index=0, name="loss", value=0.5, step=1
    )
    Impostor(broker, as_node="node1").send(event)
    assert eventually(lambda: seen == [("node1", event)])


# --- presence -----------------------------------------------------------------------------


def test_nodes_online_before_the_researcher_are_known_from_retained_presence(
    broker: MemoryBroker, blob_space: MemoryBlobStore, nodes: dict[str, FakeNode]
) -> None:
    channel = broker.connect("late-researcher")
    fed = Federation(RESEARCHER, channel, blob_space.as_peer(RESEARCHER))
    assert eventually(lambda: fed.online_nodes() == ["node1", "node2", "node3"])
    channel.close()


def test_presence_follows_nodes_coming_and_going(
    federation: Federation, broker: MemoryBroker, blob_space: MemoryBlobStore
) -> None:
    assert federation.online_nodes() == []
    node1 = FakeNode(broker, blob_space, "node1")
    node2 = FakeNode(broker, blob_space, "node2")
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2"])
    node1.announce("offline")  # a clean stop
    node1.close()
    assert eventually(lambda: federation.online_nodes() == ["node2"])
    node2.channel.crash()  # a lost connection: the broker publishes the will
    assert eventually(lambda: federation.online_nodes() == [])


def test_malformed_presence_is_ignored(
    federation: Federation, broker: MemoryBroker, nodes: dict[str, FakeNode]
) -> None:
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2", "node3"])
    channel = broker.connect("vandal")
    channel.publish(topics.presence_topic("node1"), b"garbage", retain=True)
    offline = encode_presence(NodePresence(state="offline", instance_id="i-node3"))
    channel.publish("fedward/v1/presence/node2/extra", offline)  # not a presence topic
    channel.publish(topics.presence_topic("node3"), offline)  # valid: node3 goes offline
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2"])


def test_offline_of_another_instance_does_not_take_down_the_online_one(
    federation: Federation, broker: MemoryBroker, nodes: dict[str, FakeNode]
) -> None:
    # The late will of a restarted node, or a refused duplicate's presence check.
    assert eventually(lambda: federation.online_nodes() == ["node1", "node2", "node3"])
    channel = broker.connect("old-instance")
    stale = encode_presence(NodePresence(state="offline", instance_id="i-previous"))
    channel.publish(topics.presence_topic("node2"), stale)
    time.sleep(0.2)
    assert federation.online_nodes() == ["node1", "node2", "node3"]
