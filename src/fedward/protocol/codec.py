"""JSON encoding and checked decoding of control messages.

Decoding happens in two steps so that errors say what is wrong: first a permissive
look at the envelope (is it a JSON object, which protocol version, which type), then a
strict decode of the whole message into its class, which checks every field's type and
constraints and refuses unknown fields. Size is checked before any parsing.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from fedward.core.messages import (
    PROTOCOL_VERSION,
    REPLY_TYPES,
    REQUEST_TYPES,
    AnyMessage,
    Message,
    NodePresence,
    Reply,
    Request,
    SecAggAdvert,
    wire_type,
)
from fedward.errors import MessageTooLarge, ProtocolError

DEFAULT_MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: control messages only; data goes by blob.

M = TypeVar("M", bound=Message)


class _Envelope(msgspec.Struct):
    protocol: int
    type: str


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_request_decoder = msgspec.json.Decoder(Request)
_reply_decoder = msgspec.json.Decoder(Reply)
_any_decoder = msgspec.json.Decoder(AnyMessage)
_REQUEST_KEYS = frozenset(wire_type(c) for c in REQUEST_TYPES)
_REPLY_KEYS = frozenset(wire_type(c) for c in REPLY_TYPES)


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def _check_envelope(data: bytes, max_bytes: int, allowed: frozenset[str]) -> str:
    if len(data) > max_bytes:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a fedward message: {exc}") from exc
    if envelope.protocol != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {envelope.protocol}",
            hint=f"this side speaks version {PROTOCOL_VERSION}; upgrade the older side",
        )
    if envelope.type not in allowed:
        raise ProtocolError(f"unknown or unexpected message type {envelope.type!r}")
    return envelope.type


def _decode(decoder: msgspec.json.Decoder, data: bytes, type_key: str) -> Message:
    try:
        message = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid {type_key}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed {type_key}: {exc}") from exc
    assert isinstance(message, Message)
    return message


def decode_request(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Request:
    """Decode bytes a node received; raise ProtocolError for anything that is not a request."""
    type_key = _check_envelope(data, max_bytes, _REQUEST_KEYS)
    return _decode(_request_decoder, data, type_key)  # type: ignore[return-value]


def decode_reply(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Reply:
    """Decode bytes a researcher received; raise ProtocolError for anything else."""
    type_key = _check_envelope(data, max_bytes, _REPLY_KEYS)
    return _decode(_reply_decoder, data, type_key)  # type: ignore[return-value]


def decode_any(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> AnyMessage:
    type_key = _check_envelope(data, max_bytes, _REQUEST_KEYS | _REPLY_KEYS)
    return _decode(_any_decoder, data, type_key)  # type: ignore[return-value]


_presence_decoder = msgspec.json.Decoder(NodePresence)


def encode_presence(presence: NodePresence) -> bytes:
    return _encoder.encode(presence)


def decode_presence(data: bytes) -> NodePresence:
    if len(data) > 4096:
        raise MessageTooLarge("presence message too large")
    try:
        return _presence_decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError derives from DecodeError
        raise ProtocolError(f"invalid presence message: {exc}") from exc


_advert_decoder = msgspec.json.Decoder(SecAggAdvert)
MAX_ADVERT_BYTES = 64 << 10  # a cohort of 1000 ids, and the keys


def encode_advert(advert: SecAggAdvert) -> bytes:
    return _encoder.encode(advert)


def decode_advert(data: bytes) -> SecAggAdvert:
    if len(data) > MAX_ADVERT_BYTES:
        raise MessageTooLarge("secure-aggregation advert too large")
    try:
        advert = _advert_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid secure-aggregation advert: {exc}") from exc
    if advert.protocol != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {advert.protocol} in an advert")
    return advert
