from __future__ import annotations

import json
from typing import Any

import pytest

from fedward.core.messages import (
    PROTOCOL_VERSION,
    REPLY_TYPES,
    REQUEST_TYPES,
    ApprovalRequest,
    DatasetsReply,
    DatasetSummary,
    DPSetup,
    ErrorReply,
    ListRequest,
    LogEvent,
    Message,
    NodePresence,
    PingRequest,
    PlanStatusReply,
    PlanStatusRequest,
    PongReply,
    ScalarEvent,
    SearchRequest,
    SecAggMaskedReply,
    SecAggMaskRequest,
    SecAggReadyReply,
    SecAggSetup,
    SecAggShareRequest,
    SecAggSharesReply,
    SecAggUnmaskReply,
    SecAggUnmaskRequest,
    TrainReply,
    TrainRequest,
    wire_type,
)
from fedward.errors import MessageTooLarge, ProtocolError, ValidationError
from fedward.protocol.codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    decode_any,
    decode_presence,
    decode_reply,
    decode_request,
    encode,
    encode_presence,
)

BLOB = "ab" * 32
DIGEST = "sha256:" + "cd" * 32

REQUESTS: list[Message] = [
    PingRequest(request_id="r1"),
    ListRequest(request_id="r2"),
    SearchRequest(request_id="r3", tags=["mnist", "#with spaces and é"]),
    TrainRequest(
        request_id="r4",
        experiment_id="exp-1",
        round_index=2,
        dataset_id="ds1",
        plan_blob=BLOB,
        plan_digest=DIGEST,
        plan_class="MyPlan",
        params_blob=BLOB,
        model_args={"hidden": [8, 4]},
        training_args={"lr": 0.1, "epochs": 1},
        deadline_s=12.5,
        extra_blobs={"control": BLOB},
    ),
    ApprovalRequest(request_id="r5", plan_blob=BLOB, plan_digest=DIGEST, plan_class="P"),
    PlanStatusRequest(request_id="r6", plan_blob=BLOB, plan_digest=DIGEST),
    TrainRequest(
        request_id="r7",
        experiment_id="exp-1",
        round_index=0,
        dataset_id="ds1",
        plan_blob=BLOB,
        plan_digest=DIGEST,
        plan_class="MyPlan",
        params_blob=BLOB,
        secure_aggregation=SecAggSetup(cohort=["a", "b", "c"], threshold=2),
        differential_privacy=DPSetup(mode="central", clip_norm=1.0, noise_multiplier=0.8),
    ),
    SecAggShareRequest(request_id="r8", experiment_id="e", round_index=0, members=["a", "b"]),
    SecAggMaskRequest(request_id="r9", experiment_id="e", round_index=0, sealed={"a": b"\x01"}),
    SecAggUnmaskRequest(request_id="r10", experiment_id="e", round_index=0, survivors=["a"]),
]
REPLIES: list[Message] = [
    PongReply(request_id="r1", version="0.1.0"),
    DatasetsReply(
        request_id="r2",
        datasets=[DatasetSummary(dataset_id="d", name="n", data_type="csv", tags=["t"])],
    ),
    TrainReply(
        request_id="r4",
        experiment_id="exp-1",
        round_index=2,
        params_blob=BLOB,
        sample_count=10,
        metrics={"loss": 0.5},
    ),
    PlanStatusReply(request_id="r6", plan_digest=DIGEST, status="approved", approval_required=True),
    ErrorReply(request_id="r1", code="not_found", message="no such dataset"),
    LogEvent(request_id="r4", level="info", message="epoch 1"),
    ScalarEvent(request_id="r4", experiment_id="e", round_index=0, name="loss", value=1.5, step=3),
    SecAggReadyReply(
        request_id="r7",
        experiment_id="e",
        round_index=0,
        channel_public=bytes(32),
        mask_public=bytes(range(32)),
        self_mask_commitment=b"\xff" * 32,
    ),
    SecAggSharesReply(request_id="r8", experiment_id="e", round_index=0, sealed={"b": b"x"}),
    SecAggMaskedReply(request_id="r9", experiment_id="e", round_index=0, masked_blob=BLOB),
    SecAggUnmaskReply(
        request_id="r10",
        experiment_id="e",
        round_index=0,
        self_mask_shares={"a": b"1"},
        mask_key_shares={},
    ),
]


def payload(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def ping(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "type": "ping_request",
        "request_id": "a",
    }
    fields.update(overrides)
    return payload(**fields)


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: type(m).__name__)
def test_every_request_survives_a_round_trip(message: Message) -> None:
    assert decode_request(encode(message)) == message
    assert decode_any(encode(message)) == message


@pytest.mark.parametrize("message", REPLIES, ids=lambda m: type(m).__name__)
def test_every_reply_survives_a_round_trip(message: Message) -> None:
    assert decode_reply(encode(message)) == message
    assert decode_any(encode(message)) == message


def test_the_wire_carries_the_type_key_and_the_protocol_version() -> None:
    wire = json.loads(encode(PingRequest(request_id="a")))
    assert wire == {"type": "ping_request", "request_id": "a", "protocol": PROTOCOL_VERSION}


def test_wire_type_keys_are_stable_and_unique() -> None:
    keys = [wire_type(c) for c in REQUEST_TYPES + REPLY_TYPES]
    assert len(keys) == len(set(keys))
    assert all(k.endswith("_request") for k in map(wire_type, REQUEST_TYPES))
    assert all(k.endswith(("_reply", "_event")) for k in map(wire_type, REPLY_TYPES))
    assert wire_type(TrainRequest) == "train_request"
    assert wire_type(TrainReply) == "train_reply"


def test_message_classes_cover_every_example() -> None:
    assert {type(m) for m in REQUESTS} == set(REQUEST_TYPES)
    assert {type(m) for m in REPLIES} == set(REPLY_TYPES)


# --- bad input: each becomes a ProtocolError whose message says what is wrong ----------


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "malformed"),
        (b'{"protocol": 1, "type": "ping_request", "request_id": "a"} trailing', "malformed"),
        (b"", "truncated"),
        (b"\xff\xfe\x00", "malformed"),
        (b'{"protocol": 1, "type": "ping_request", "request_id": "a"', "truncated"),
    ],
)
def test_malformed_json_is_a_protocol_error(data: bytes, says: str) -> None:
    with pytest.raises(ProtocolError, match="not a fedward message") as caught:
        decode_request(data)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("data", "got"), [(b"[1, 2]", "array"), (b'"ping"', "str"), (b"42", "int"), (b"null", "null")]
)
def test_json_that_is_not_an_object_is_a_protocol_error(data: bytes, got: str) -> None:
    with pytest.raises(ProtocolError, match=f"Expected `object`, got `{got}`"):
        decode_request(data)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_another_protocol_version_is_refused_with_advice(version: int) -> None:
    with pytest.raises(ProtocolError, match=f"unsupported protocol version {version}") as caught:
        decode_request(ping(protocol=version))
    assert caught.value.hint is not None and "upgrade" in caught.value.hint


def test_a_missing_or_mistyped_protocol_version_is_named() -> None:
    with pytest.raises(ProtocolError, match="missing required field `protocol`"):
        decode_request(payload(type="ping_request", request_id="a"))
    with pytest.raises(ProtocolError, match=r"Expected `int`, got `str` - at `\$.protocol`"):
        decode_request(ping(protocol="1"))


def test_an_unknown_type_is_refused_and_named() -> None:
    with pytest.raises(ProtocolError, match="unexpected message type 'format_disk_request'"):
        decode_request(ping(type="format_disk_request"))


def test_a_missing_type_is_named() -> None:
    with pytest.raises(ProtocolError, match="missing required field `type`"):
        decode_request(payload(protocol=1, request_id="a"))


def test_a_missing_field_is_named_with_the_message_type() -> None:
    with pytest.raises(
        ProtocolError, match=r"invalid search_request: .*missing required field `tags`"
    ):
        decode_request(ping(type="search_request"))
    with pytest.raises(ProtocolError, match="missing required field `request_id`"):
        decode_request(payload(protocol=1, type="ping_request"))


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        (
            {"type": "search_request", "tags": "mnist"},
            r"Expected `array`, got `str` - at `\$.tags`",
        ),
        ({"type": "search_request", "tags": []}, r"length >= 1 - at `\$.tags`"),
        ({"type": "search_request", "tags": [1]}, r"at `\$.tags\[0\]`"),
        ({"request_id": "../etc"}, r"at `\$.request_id`"),
        ({"request_id": 7}, r"Expected `str`, got `int` - at `\$.request_id`"),
    ],
)
def test_a_mistyped_field_is_named_with_its_path(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ProtocolError, match=where):
        decode_request(ping(**fields))


def test_mistyped_train_request_fields_are_refused() -> None:
    good = json.loads(encode(REQUESTS[3]))
    for field, bad in [
        ("round_index", -1),
        ("deadline_s", 0),
        ("params_blob", "not-a-hash"),
        ("plan_digest", "sha256:xyz"),
        ("plan_class", "os.system"),
        ("model_args", [1]),
    ]:
        with pytest.raises(ProtocolError, match=rf"invalid train_request: .*\$.{field}"):
            decode_request(payload(**{**good, field: bad}))


def test_an_unknown_field_is_refused_and_named() -> None:
    with pytest.raises(ProtocolError, match="unknown field `sender`"):
        decode_request(ping(sender="researcher-admin"))


def test_an_unknown_field_in_a_nested_dataset_summary_is_refused() -> None:
    reply = json.loads(encode(REPLIES[1]))
    reply["datasets"][0]["path"] = "/data/secret.csv"
    with pytest.raises(ProtocolError, match="unknown field `path`"):
        decode_reply(payload(**reply))


def test_a_message_over_the_size_limit_is_refused_before_parsing() -> None:
    data = ping()
    with pytest.raises(
        MessageTooLarge, match=f"{len(data)} bytes exceeds the limit of {len(data) - 1}"
    ):
        decode_request(data, max_bytes=len(data) - 1)
    # Over the limit and not even JSON: still "too large", proving size is checked first.
    with pytest.raises(MessageTooLarge):
        decode_request(b"x" * (DEFAULT_MAX_MESSAGE_BYTES + 1))


def test_a_message_exactly_at_the_size_limit_is_accepted() -> None:
    data = ping()
    assert decode_request(data, max_bytes=len(data)) == PingRequest(request_id="a")


def test_too_large_is_a_protocol_error_and_a_validation_error() -> None:
    assert issubclass(MessageTooLarge, ProtocolError)
    assert issubclass(ProtocolError, ValidationError)
    assert issubclass(ProtocolError, ValueError)


@pytest.mark.parametrize("reply", REPLIES, ids=lambda m: type(m).__name__)
def test_a_reply_sent_as_a_request_is_refused(reply: Message) -> None:
    with pytest.raises(ProtocolError, match=f"unexpected message type '{wire_type(type(reply))}'"):
        decode_request(encode(reply))


@pytest.mark.parametrize("request_message", REQUESTS, ids=lambda m: type(m).__name__)
def test_a_request_sent_as_a_reply_is_refused(request_message: Message) -> None:
    with pytest.raises(ProtocolError, match="unexpected message type"):
        decode_reply(encode(request_message))


def test_a_type_key_that_disagrees_with_the_fields_is_refused() -> None:
    # A pong body labelled as a ping: the strict decode checks the fields of the named type.
    with pytest.raises(ProtocolError, match="unknown field `version`"):
        decode_request(ping(version="1"))


# --- presence ----------------------------------------------------------------------------


def test_presence_round_trips_and_refuses_bad_input() -> None:
    presence = NodePresence(state="online", instance_id="inst-1", version="0.1")
    assert decode_presence(encode_presence(presence)) == presence
    with pytest.raises(ProtocolError, match="invalid presence"):
        decode_presence(payload(protocol=1, state="maybe", instance_id="i"))
    with pytest.raises(ProtocolError, match="invalid presence"):
        decode_presence(b"{")
    with pytest.raises(MessageTooLarge):
        decode_presence(b" " * 5000)


# What a node writes for people reaches the researcher's terminal, log and TensorBoard:
# escape sequences (cursor moves, OSC 52 clipboard writes), C1 controls and bidirectional
# overrides are refused on decoding; metric names keep to what a chart label shows as is.
TERMINAL_TRICKS = ["\x1b[2K\x1b[1Around 1/1 done", "\x1b]52;c;Y3VybA==\x07", "\x9b31m", "\u202etxt"]


def reply_with(index: int, **fields: Any) -> bytes:
    return payload(**{**json.loads(encode(REPLIES[index])), **fields})


@pytest.mark.parametrize("trick", TERMINAL_TRICKS)
def test_control_characters_in_a_node_s_text_are_refused(trick: str) -> None:
    error = REPLIES.index(next(r for r in REPLIES if isinstance(r, ErrorReply)))
    train = REPLIES.index(next(r for r in REPLIES if isinstance(r, TrainReply)))
    scalar = REPLIES.index(next(r for r in REPLIES if isinstance(r, ScalarEvent)))
    for data, where in [
        (reply_with(error, message=f"out of memory {trick}"), r"\$.message"),
        (reply_with(error, code=trick), r"\$.code"),
        (reply_with(train, metrics={f"global_{trick}": 0.5}), r"\$.metrics"),
        (reply_with(train, timings={trick: 0.5}), r"\$.timings"),
        (reply_with(scalar, name=f"loss{trick}"), r"\$.name"),
    ]:
        with pytest.raises(ProtocolError, match=where):
            decode_reply(data)


def test_line_breaks_are_text_only_where_text_may_span_lines() -> None:
    error = REPLIES.index(next(r for r in REPLIES if isinstance(r, ErrorReply)))
    reply = decode_reply(reply_with(error, message="first line\r\nsecond\tline"))
    assert isinstance(reply, ErrorReply) and reply.message == "first line\r\nsecond\tline"
    with pytest.raises(ProtocolError, match=r"\$.code"):
        decode_reply(reply_with(error, code="oom\nWARNING forged"))
    train = REPLIES.index(next(r for r in REPLIES if isinstance(r, TrainReply)))
    with pytest.raises(ProtocolError, match=r"\$.metrics"):
        decode_reply(reply_with(train, metrics={"global accuracy": 0.5}))
