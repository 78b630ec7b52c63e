"""Typed control messages exchanged between researchers and nodes.

Every message is a frozen ``msgspec.Struct`` with a stable wire key in ``type``
(``<verb>_<noun>_request`` / ``..._reply``; never renamed) and the protocol version in
``protocol``. Field constraints live in the annotations, so decoding (see
``fedward.protocol.codec``) checks every field before anything acts on a message.

Who sent a message is never a field: it is taken from the MQTT topic, which the broker's
ACL binds to the sender's username.

Requests (researcher -> node)          Replies / events (node -> researcher)
- PingRequest                          - PongReply
- ListRequest, SearchRequest           - DatasetsReply
- TrainRequest                         - TrainReply
- ApprovalRequest                      - PlanStatusReply
- PlanStatusRequest                    - PlanStatusReply
                                       - ErrorReply (answers any request)
                                       - LogEvent, ScalarEvent (during training)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION = 1

# msgspec matches patterns with re.search, where "$" also matches before a final
# newline: "\Z" is the end of the string, so "node1\n" is not an id.

Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")]
Tag = Annotated[str, msgspec.Meta(pattern=r"^[^\x00-\x1f,]{1,64}\Z")]
PythonName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}\Z")]
PlanDigest = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{3,16}:[0-9a-f]{32,128}\Z")]
ShortText = Annotated[str, msgspec.Meta(max_length=200)]
LongText = Annotated[str, msgspec.Meta(max_length=20_000)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PlanStatus = Literal["approved", "pending", "rejected", "unknown"]
LogLevel = Literal["debug", "info", "warning", "error"]
JsonObject = dict[str, Any]


class Message(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="type",
):
    """Base of every control message."""

    request_id: Id
    protocol: int = PROTOCOL_VERSION


class DatasetSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a researcher may know about a dataset: never its path, never its content."""

    dataset_id: Id
    name: ShortText
    data_type: Id
    tags: list[Tag]
    description: LongText = ""
    shape: list[NonNegativeInt] = []
    dtypes: dict[str, ShortText] = {}
    sample_count: NonNegativeInt = 0


# --- requests --------------------------------------------------------------------


class PingRequest(Message, frozen=True, tag="ping_request"):
    pass


class ListRequest(Message, frozen=True, tag="list_request"):
    pass


class SearchRequest(Message, frozen=True, tag="search_request"):
    tags: Annotated[list[Tag], msgspec.Meta(min_length=1, max_length=64)]


class TrainRequest(Message, frozen=True, tag="train_request"):
    experiment_id: Id
    round_index: NonNegativeInt
    dataset_id: Id
    plan_blob: Sha256
    plan_digest: PlanDigest
    plan_class: PythonName
    params_blob: Sha256
    model_args: JsonObject = {}
    training_args: JsonObject = {}
    # Relative, not absolute: researcher and node clocks need not agree.
    deadline_s: PositiveFloat = 3600.0
    # Extra named blobs some aggregators send (e.g. SCAFFOLD's server control variate).
    extra_blobs: dict[Id, Sha256] = {}


class ApprovalRequest(Message, frozen=True, tag="approval_request"):
    plan_blob: Sha256
    plan_digest: PlanDigest
    plan_class: PythonName
    description: LongText = ""


class PlanStatusRequest(Message, frozen=True, tag="plan_status_request"):
    # The node hashes the source itself, with its own algorithm; the digest is informative.
    plan_blob: Sha256
    plan_digest: PlanDigest


# --- replies and events -------------------------------------------------------------


class PongReply(Message, frozen=True, tag="pong_reply"):
    version: ShortText


class DatasetsReply(Message, frozen=True, tag="datasets_reply"):
    datasets: list[DatasetSummary]


class TrainReply(Message, frozen=True, tag="train_reply"):
    experiment_id: Id
    round_index: NonNegativeInt
    params_blob: Sha256
    sample_count: NonNegativeInt
    metrics: dict[ShortText, float] = {}
    timings: dict[ShortText, float] = {}
    extra_blobs: dict[Id, Sha256] = {}


class PlanStatusReply(Message, frozen=True, tag="plan_status_reply"):
    plan_digest: PlanDigest
    status: PlanStatus
    approval_required: bool
    notes: LongText = ""


class ErrorReply(Message, frozen=True, tag="error_reply"):
    code: ShortText
    message: LongText


class LogEvent(Message, frozen=True, tag="log_event"):
    level: LogLevel
    message: LongText


class ScalarEvent(Message, frozen=True, tag="scalar_event"):
    experiment_id: Id
    round_index: NonNegativeInt
    name: ShortText
    value: float
    step: NonNegativeInt


Request = (
    PingRequest | ListRequest | SearchRequest | TrainRequest | ApprovalRequest | PlanStatusRequest
)
Reply = (
    PongReply | DatasetsReply | TrainReply | PlanStatusReply | ErrorReply | LogEvent | ScalarEvent
)
AnyMessage = Request | Reply

REQUEST_TYPES: tuple[type[Message], ...] = (
    PingRequest,
    ListRequest,
    SearchRequest,
    TrainRequest,
    ApprovalRequest,
    PlanStatusRequest,
)
REPLY_TYPES: tuple[type[Message], ...] = (
    PongReply,
    DatasetsReply,
    TrainReply,
    PlanStatusReply,
    ErrorReply,
    LogEvent,
    ScalarEvent,
)


def wire_type(cls: type[Message]) -> str:
    """The stable ``type`` key of a message class."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class NodePresence(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Retained on the node's presence topic: "online" while connected, "offline" as its will."""

    protocol: int = PROTOCOL_VERSION
    state: Literal["online", "offline"]
    instance_id: Id
    version: ShortText = ""
