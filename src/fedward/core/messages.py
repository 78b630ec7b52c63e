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
- SecAggShareRequest                   - SecAggReadyReply (a TrainRequest with SecAgg)
- SecAggMaskRequest                    - SecAggSharesReply, SecAggMaskedReply
- SecAggUnmaskRequest                  - SecAggUnmaskReply
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
OptionalId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{0,64}\Z")]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")]
# Text written for people ends up in terminals, logs, TensorBoard and web pages: no C0
# control but tab and line breaks, no DEL, no C1 (\x9b is a CSI on some terminals), no
# bidirectional override, any of which could rewrite what a reader sees.
TEXT_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
Tag = Annotated[str, msgspec.Meta(pattern=rf"^[^\t\n\r{TEXT_CONTROLS},]{{1,64}}\Z")]
PythonName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}\Z")]
PlanDigest = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{3,16}:[0-9a-f]{32,128}\Z")]
ShortText = Annotated[str, msgspec.Meta(max_length=200, pattern=rf"^[^\n\r{TEXT_CONTROLS}]*\Z")]
LongText = Annotated[str, msgspec.Meta(max_length=20_000, pattern=rf"^[^{TEXT_CONTROLS}]*\Z")]
# What a plan may call a metric or a scalar (the worker's report holds it to this too).
MetricName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:/@+-]{1,100}\Z")]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PlanStatus = Literal["approved", "pending", "rejected", "unknown"]
LogLevel = Literal["debug", "info", "warning", "error"]
JsonObject = dict[str, Any]
# A name, not a Literal: a node that does not know a codec says so in its own words.
CodecName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,20}\Z")]


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


class PlanLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A line of the plan's own code in a failure: its number in the plan's canonical text
    (``fedward.core.plan_digest.normalise_source`` of what the researcher sent), the
    function, and the line's text."""

    line: Annotated[int, msgspec.Meta(ge=1)]
    function: ShortText
    text: ShortText = ""


# --- requests --------------------------------------------------------------------


class PingRequest(Message, frozen=True, tag="ping_request"):
    pass


class ListRequest(Message, frozen=True, tag="list_request"):
    pass


class SearchRequest(Message, frozen=True, tag="search_request"):
    tags: Annotated[list[Tag], msgspec.Meta(min_length=1, max_length=64)]


class SecAggSetup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Secure aggregation of one round (see ``fedward.privacy``): who takes part, how many
    must finish, and the fixed-point encoding."""

    cohort: Annotated[list[Id], msgspec.Meta(min_length=2, max_length=1000)]
    threshold: Annotated[int, msgspec.Meta(ge=2)]
    fraction_bits: Annotated[int, msgspec.Meta(ge=8, le=40)] = 24


class DPSetup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Differential privacy asked by the researcher: ``central`` (the node daemon clips the
    update's change and adds its share of noise) or ``local`` (DP-SGD in the plan)."""

    mode: Literal["central", "local"]
    clip_norm: PositiveFloat
    noise_multiplier: Annotated[float, msgspec.Meta(ge=0)]
    delta: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 1e-5


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
    secure_aggregation: SecAggSetup | None = None
    differential_privacy: DPSetup | None = None
    # Update codecs (docs/update-codecs.md): how the node encodes its update; with one,
    # ``params_blob`` is a delta against the node's model ``params_base`` when that is
    # set (else the full model), and the node keeps what it reconstructs as ``params_ref``.
    update_codec: CodecName = "none"
    params_base: Sha256 | None = None
    params_ref: Sha256 | None = None


class ApprovalRequest(Message, frozen=True, tag="approval_request"):
    plan_blob: Sha256
    plan_digest: PlanDigest
    plan_class: PythonName
    description: LongText = ""


class PlanStatusRequest(Message, frozen=True, tag="plan_status_request"):
    # The node hashes the source itself, with its own algorithm; the digest is informative.
    plan_blob: Sha256
    plan_digest: PlanDigest


# Secure aggregation, after the TrainRequest (see fedward.privacy.secagg_participant).
PublicKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
SealedShares = Annotated[bytes, msgspec.Meta(max_length=512)]
Share = Annotated[bytes, msgspec.Meta(max_length=128)]
SharesByNode = Annotated[dict[Id, SealedShares], msgspec.Meta(max_length=1000)]
RevealedByNode = Annotated[dict[Id, Share], msgspec.Meta(max_length=1000)]
NodeIds = Annotated[list[Id], msgspec.Meta(max_length=1000)]


class SecAggShareRequest(Message, frozen=True, tag="secagg_share_request"):
    experiment_id: Id
    round_index: NonNegativeInt
    members: NodeIds  # U1: the nodes whose keys are used


class SecAggMaskRequest(Message, frozen=True, tag="secagg_mask_request"):
    experiment_id: Id
    round_index: NonNegativeInt
    sealed: SharesByNode  # sender -> the shares it sealed for this node; senders are U2


class SecAggUnmaskRequest(Message, frozen=True, tag="secagg_unmask_request"):
    experiment_id: Id
    round_index: NonNegativeInt
    survivors: NodeIds  # U3: the nodes whose masked update is in the sum


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
    metrics: dict[MetricName, float] = {}
    timings: dict[MetricName, float] = {}
    extra_blobs: dict[Id, Sha256] = {}
    # The node's id for the job (what ``fedward node jobs`` shows).
    job_id: OptionalId = ""
    # Threads the job's arithmetic used: results depend on it (0: not reported).
    threads: NonNegativeInt = 0


class SecAggReadyReply(Message, frozen=True, tag="secagg_ready_reply"):
    """Trained; the update waits, unmasked, on the node. The keys are the ones the node
    published on its advert topic (nodes take them from there, never from here)."""

    experiment_id: Id
    round_index: NonNegativeInt
    channel_public: PublicKey
    mask_public: PublicKey
    self_mask_commitment: PublicKey
    metrics: dict[MetricName, float] = {}
    timings: dict[MetricName, float] = {}


class SecAggSharesReply(Message, frozen=True, tag="secagg_shares_reply"):
    experiment_id: Id
    round_index: NonNegativeInt
    sealed: SharesByNode  # recipient -> shares sealed for it


class SecAggMaskedReply(Message, frozen=True, tag="secagg_masked_reply"):
    experiment_id: Id
    round_index: NonNegativeInt
    masked_blob: Sha256


class SecAggUnmaskReply(Message, frozen=True, tag="secagg_unmask_reply"):
    experiment_id: Id
    round_index: NonNegativeInt
    self_mask_shares: RevealedByNode
    mask_key_shares: RevealedByNode


class PlanStatusReply(Message, frozen=True, tag="plan_status_reply"):
    plan_digest: PlanDigest
    status: PlanStatus
    approval_required: bool
    notes: LongText = ""


class ErrorReply(Message, frozen=True, tag="error_reply"):
    code: ShortText
    message: LongText
    # Set when the request started a job: the node's id for it (``fedward node jobs``).
    job_id: OptionalId = ""
    # Where the plan's own code failed, innermost last.
    plan_lines: Annotated[list[PlanLine], msgspec.Meta(max_length=8)] = []


class LogEvent(Message, frozen=True, tag="log_event"):
    level: LogLevel
    message: LongText


class ScalarEvent(Message, frozen=True, tag="scalar_event"):
    experiment_id: Id
    round_index: NonNegativeInt
    name: MetricName
    value: float
    step: NonNegativeInt


Request = (
    PingRequest
    | ListRequest
    | SearchRequest
    | TrainRequest
    | ApprovalRequest
    | PlanStatusRequest
    | SecAggShareRequest
    | SecAggMaskRequest
    | SecAggUnmaskRequest
)
Reply = (
    PongReply
    | DatasetsReply
    | TrainReply
    | PlanStatusReply
    | ErrorReply
    | LogEvent
    | ScalarEvent
    | SecAggReadyReply
    | SecAggSharesReply
    | SecAggMaskedReply
    | SecAggUnmaskReply
)
AnyMessage = Request | Reply

REQUEST_TYPES: tuple[type[Message], ...] = (
    PingRequest,
    ListRequest,
    SearchRequest,
    TrainRequest,
    ApprovalRequest,
    PlanStatusRequest,
    SecAggShareRequest,
    SecAggMaskRequest,
    SecAggUnmaskRequest,
)
REPLY_TYPES: tuple[type[Message], ...] = (
    PongReply,
    DatasetsReply,
    TrainReply,
    PlanStatusReply,
    ErrorReply,
    LogEvent,
    ScalarEvent,
    SecAggReadyReply,
    SecAggSharesReply,
    SecAggMaskedReply,
    SecAggUnmaskReply,
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


class SecAggAdvert(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A node's keys for one secure-aggregation round, on its own advert topic: the topic
    names the node and the broker lets only that node write it, so other nodes take the
    keys from here and the researcher cannot substitute them."""

    protocol: int = PROTOCOL_VERSION
    experiment_id: Id
    round_index: NonNegativeInt
    cohort: Annotated[list[Id], msgspec.Meta(min_length=2, max_length=1000)]
    threshold: Annotated[int, msgspec.Meta(ge=2)]
    fraction_bits: Annotated[int, msgspec.Meta(ge=8, le=40)]
    channel_public: PublicKey
    mask_public: PublicKey
    self_mask_commitment: PublicKey
