"""Every bad input gets a clear error, changes nothing, and the node still answers ping."""

from __future__ import annotations

import hashlib
import queue
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from fedward.core.messages import ErrorReply, PingRequest, PongReply, TrainRequest
from fedward.demo.local_federation import LocalFederation
from fedward.errors import AccessDenied, NotFound, ValidationError
from fedward.learning.plan_source import plan_source
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.protocol import topics
from fedward.protocol.codec import decode_reply, encode
from fedward.protocol.params_wire import params_to_bytes
from fedward.transport.http_blobs import HttpBlobStore
from fedward.transport.mqtt import MqttChannel


class RawResearcher:
    """Sends arbitrary bytes to node1 and reads raw replies, with the researcher's credentials."""

    def __init__(self, fed: LocalFederation) -> None:
        config = fed.researcher_config()
        self.researcher_id = config.researcher_id
        self.replies: queue.Queue[object] = queue.Queue()
        self.channel = MqttChannel(config.broker, client_id="raw-researcher")
        self.channel.subscribe(
            topics.researcher_subscriptions(self.researcher_id)[0],
            lambda topic, payload: self.replies.put(decode_reply(payload)),
        )

    def send_raw(self, payload: bytes, node_id: str = "node1") -> None:
        self.channel.publish(topics.node_topic(node_id, self.researcher_id), payload)

    def next_reply(self, request_id: str | None = None, timeout_s: float = 60.0) -> object:
        """The next reply (to ``request_id`` when given; the test's other calls share the topic)."""
        while True:
            reply = self.replies.get(timeout=timeout_s)
            if request_id is None or getattr(reply, "request_id", None) == request_id:
                return reply

    def assert_node_answers_ping(self) -> None:
        self.send_raw(encode(PingRequest(request_id="ping-after")))
        assert isinstance(self.next_reply("ping-after"), PongReply)


@pytest.fixture(scope="module")
def raw(federation: LocalFederation) -> Iterator[RawResearcher]:
    researcher = RawResearcher(federation)
    yield researcher
    researcher.channel.close()


BAD_MESSAGES = {
    "malformed json": b'{"protocol": 1, "type": "ping_req',
    "wrong protocol version": b'{"protocol": 99, "type": "ping_request", "request_id": "r1"}',
    "unknown type": b'{"protocol": 1, "type": "format_disk_request", "request_id": "r1"}',
    "missing field": b'{"protocol": 1, "type": "search_request", "request_id": "r1"}',
    "mistyped field": b'{"protocol": 1, "type": "search_request", "request_id": "r1", "tags": "a"}',
    "over the size limit": b'{"protocol": 1, "type": "ping_request", "request_id": "r1", "x": "'
    + b"a" * (1 << 20)
    + b'"}',
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_bad_message_gets_error_reply_and_node_keeps_serving(raw: RawResearcher, case: str) -> None:
    raw.send_raw(BAD_MESSAGES[case])
    reply = raw.next_reply()
    assert isinstance(reply, ErrorReply), reply
    assert reply.code in {"protocol", "too_large"}
    assert reply.message
    raw.assert_node_answers_ping()


def _train_request(fed: LocalFederation, **overrides: object) -> TrainRequest:
    blobs = fed.researcher().blobs
    source = plan_source(SGDClassifierPlan)
    plan_blob = blobs.put_bytes(source.encode(), readers=["node1"])
    plan = SGDClassifierPlan({"n_features": 30, "classes": [0, 1]})
    params_blob = blobs.put_bytes(params_to_bytes(plan.init_params(0)), readers=["node1"])
    dataset_id = fed.researcher().search(["e2e"])["node1"][0].dataset_id
    fields: dict[str, object] = {
        "request_id": "train-bad",
        "experiment_id": "exp-bad",
        "round_index": 0,
        "dataset_id": dataset_id,
        "plan_blob": plan_blob,
        "plan_digest": "sha256:" + "0" * 64,
        "plan_class": "SGDClassifierPlan",
        "params_blob": params_blob,
        "model_args": {"n_features": 30, "classes": [0, 1]},
        "training_args": {"epochs": 1},
        "deadline_s": 60.0,
    }
    fields.update(overrides)
    return TrainRequest(**fields)  # type: ignore[arg-type]


def test_unknown_dataset_id_is_refused(federation: LocalFederation, raw: RawResearcher) -> None:
    raw.send_raw(encode(_train_request(federation, dataset_id="no-such-dataset")))
    reply = raw.next_reply("train-bad")
    assert isinstance(reply, ErrorReply)
    assert reply.code == "not_found" and "no-such-dataset" in reply.message
    raw.assert_node_answers_ping()


def test_missing_params_blob_is_refused(federation: LocalFederation, raw: RawResearcher) -> None:
    raw.send_raw(encode(_train_request(federation, params_blob="f" * 64)))
    reply = raw.next_reply("train-bad")
    assert isinstance(reply, ErrorReply) and reply.code == "not_found"
    raw.assert_node_answers_ping()


def test_blob_the_node_may_not_read_is_refused(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    blobs = federation.researcher().blobs
    private = blobs.put_bytes(
        params_to_bytes({"w": __import__("numpy").zeros(3)}), readers=["node2"]
    )
    raw.send_raw(encode(_train_request(federation, params_blob=private)))
    reply = raw.next_reply("train-bad")
    assert isinstance(reply, ErrorReply) and reply.code == "not_found"
    raw.assert_node_answers_ping()


def test_params_that_are_not_safetensors_are_refused(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    blobs = federation.researcher().blobs
    garbage = blobs.put_bytes(b"\x80\x04 definitely not safetensors" * 4, readers=["node1"])
    raw.send_raw(encode(_train_request(federation, params_blob=garbage)))
    reply = raw.next_reply("train-bad")
    assert isinstance(reply, ErrorReply)
    assert "Traceback" not in reply.message and "/" not in reply.message
    raw.assert_node_answers_ping()


def test_second_node_with_an_online_id_is_refused(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    node = federation.nodes["node1"]
    result = subprocess.run(
        [sys.executable, "-m", "fedward.cli", "node", "start", "--config", str(node.config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "already online" in result.stderr
    raw.assert_node_answers_ping()
    # The refused duplicate's presence check did not make the researcher drop node1.
    assert "node1" in federation.researcher().online_nodes()


def test_upload_over_the_limit_is_refused_and_node_keeps_serving(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    blobs = federation.researcher().blobs
    too_big = b"x" * (federation.max_blob_mb * 1024 * 1024 + 1)  # type: ignore[operator]
    with pytest.raises(ValidationError):
        blobs.put_bytes(too_big, readers=["node1"])
    raw.assert_node_answers_ping()


def test_wrong_upload_token_is_refused_and_node_keeps_serving(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    intruder = HttpBlobStore(federation.uploads_url, "not-the-token")
    try:
        with pytest.raises(AccessDenied):
            intruder.put_bytes(b"hello", readers=["node1"])
    finally:
        intruder.close()
    raw.assert_node_answers_ping()


def test_upload_whose_content_does_not_match_its_id_is_refused_and_node_keeps_serving(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    token = federation.researcher_config().uploads.token
    assert token is not None
    wrong_id = hashlib.sha256(b"something else").hexdigest()
    response = httpx.put(
        f"{federation.uploads_url}/blobs/{wrong_id}",
        content=b"the real content",
        headers={"Authorization": f"Bearer {token.reveal()}", "X-Fedward-Readers": "node1"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "integrity"
    with pytest.raises(NotFound):
        federation.researcher().blobs.get_bytes(wrong_id)
    raw.assert_node_answers_ping()


def test_upload_without_a_token_is_refused_and_node_keeps_serving(
    federation: LocalFederation, raw: RawResearcher
) -> None:
    data = b"anonymous"
    response = httpx.put(
        f"{federation.uploads_url}/blobs/{hashlib.sha256(data).hexdigest()}", content=data
    )
    assert response.status_code == 401
    raw.assert_node_answers_ping()
