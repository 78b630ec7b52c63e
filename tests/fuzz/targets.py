"""Parsers that read outside bytes, each wrapped as a fuzz target: ``target(data: bytes)``.

A target feeds ``data`` to one parser and returns normally when the parser either
accepted it (then the target checks what came out: a decoded message encodes back to
the same message, a header's tensors lie inside the file...) or refused it with the
error its documentation names (``ProtocolError`` for the wire, ``ConfigError`` for
configuration, ``DatasetError`` for dataset files...). Anything else escaping a target
is a crash: an unexpected exception type, a failed check, a hang caught by the fuzzer.

The same targets run under atheris (``tests/fuzz/run.py``, ``make fuzz``) and replay
every saved crash as a regression test (``tests/property/test_fuzz_regressions.py``).
Targets that need files write them under one scratch folder per process
(``Scratch``), on tmpfs when there is one: the parsers open paths, and a real file is
what they open in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from fedward.errors import (
    ConfigError,
    Conflict,
    DatasetError,
    PlanError,
    ProtocolError,
    ValidationError,
)
from tests.upload_exchange import exchange

Target = Callable[[bytes], None]


class Scratch:
    """One folder per process for the files targets hand to path-based parsers."""

    _root: Path | None = None

    @classmethod
    def root(cls) -> Path:
        if cls._root is None:
            base = "/dev/shm" if Path("/dev/shm").is_dir() else None
            cls._root = Path(tempfile.mkdtemp(prefix="fedward-fuzz-", dir=base))
        return cls._root

    @classmethod
    def file(cls, name: str, data: bytes) -> Path:
        path = cls.root() / name
        path.write_bytes(data)
        return path


# --- the wire ------------------------------------------------------------------------------


def codec(data: bytes) -> None:
    """Control messages (``protocol.codec``): requests, replies, presence."""
    from fedward.protocol import codec as wire

    for decode in (wire.decode_request, wire.decode_reply, wire.decode_any):
        try:
            message = decode(data)
        except ProtocolError:
            continue
        again = wire.decode_any(wire.encode(message))
        if again != message:
            raise AssertionError(f"{type(message).__name__} changed in a round trip")
    try:
        presence = wire.decode_presence(data)
    except ProtocolError:
        return
    if wire.decode_presence(wire.encode_presence(presence)) != presence:
        raise AssertionError("presence changed in a round trip")


def worker_report(data: bytes) -> None:
    """A line from a job worker (``node.jobs.wire``): a plan that speaks the worker's
    protocol writes whatever it likes on the report socket, so the node reads it as it
    reads any peer's bytes. A report it accepts has finite numbers, names its job as
    a job id is written, and encodes back to itself; its log text is one printable line."""
    import math

    from fedward.node.jobs import wire

    try:
        report = wire.decode_report(data)
    except wire.UnreadableReport:
        return
    if wire.decode_report(wire.encoder.encode(report)) != report:
        raise AssertionError(f"{type(report).__name__} changed in a round trip")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", report.job_id):
        raise AssertionError(f"job id {report.job_id!r} accepted")
    numbers: list[float] = []
    if isinstance(report, wire.ScalarOut):
        numbers = [report.value]
    elif isinstance(report, wire.ResultOut):
        numbers = [*report.metrics.values(), *report.timings.values()]
    if not all(math.isfinite(n) for n in numbers):
        raise AssertionError("a number that is not finite was accepted")
    if isinstance(report, wire.LogOut | wire.FailureOut):
        shown = wire.printable(report.message)
        if not shown.isprintable() or len(shown) != len(report.message):
            raise AssertionError("a worker's message is not one printable line")


@cache
def _event_loop() -> Any:
    import asyncio

    return asyncio.new_event_loop()


def mqtt_packets(data: bytes) -> None:
    """A byte stream from an MQTT client to the embedded broker (``broker.packets``): the
    demo's broker reads it before the client has authenticated. Every packet is read
    off the stream, then parsed by its type, as a session does; a PUBLISH that parses
    encodes back to the same packet."""
    import asyncio

    from fedward.broker import packets as mqtt
    from fedward.errors import MalformedPacket

    async def session() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        while True:
            try:
                kind, flags, body = await mqtt.read_packet(reader, 4096)
            except (asyncio.IncompleteReadError, MalformedPacket):
                return
            with contextlib.suppress(MalformedPacket):
                _parse_packet(mqtt, kind, flags, body)

    _event_loop().run_until_complete(session())


def _parse_packet(mqtt: Any, kind: Any, flags: int, body: bytes) -> None:
    if kind == mqtt.PacketType.CONNECT:
        mqtt.parse_connect(body)
    elif kind == mqtt.PacketType.PUBLISH:
        publish = mqtt.parse_publish(flags, body)
        again = mqtt.encode_publish(
            publish.topic, publish.payload, publish.qos, publish.retain, publish.packet_id or 0
        )
        flags_again = (publish.qos << 1) | int(publish.retain)  # DUP is not kept
        if again != mqtt.encode_packet(mqtt.PacketType.PUBLISH, flags_again, body):
            raise AssertionError("PUBLISH changed in a round trip")
    elif kind == mqtt.PacketType.SUBSCRIBE:
        mqtt.parse_subscribe(body)
    elif kind == mqtt.PacketType.UNSUBSCRIBE:
        mqtt.parse_unsubscribe(body)
    elif kind in (
        mqtt.PacketType.PUBACK,
        mqtt.PacketType.PUBREC,
        mqtt.PacketType.PUBREL,
        mqtt.PacketType.PUBCOMP,
    ):
        mqtt.parse_packet_id(body)


def safetensors_header(data: bytes) -> None:
    """The safetensors header checks (``protocol.safetensors_header``)."""
    from fedward.protocol.safetensors_header import read_header

    path = Scratch.file("header.safetensors", data)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            entries = read_header(fd, len(data))
        except ProtocolError:
            return
    finally:
        os.close(fd)
    for name, entry in entries.items():
        if not 8 <= entry.offset <= entry.offset + entry.nbytes <= len(data):
            raise AssertionError(f"tensor {name!r} was accepted outside the file")


def params_wire(data: bytes) -> None:
    """Parameters as a peer sends them (``protocol.params_wire``): the lazy reader with its
    value check, and the in-memory reader of the safetensors library."""
    from fedward.protocol.params_wire import open_params, params_from_bytes, params_to_bytes

    path = Scratch.file("params.safetensors", data)
    try:
        with open_params(path) as lazy:
            tensors = {name: lazy[name] for name in lazy}
            with contextlib.suppress(ProtocolError):
                lazy.check_values()
    except ProtocolError:
        tensors = None
    if tensors is not None:
        # What the lazy reader accepted, the library reads the same way.
        again = params_from_bytes(params_to_bytes(tensors))
        if sorted(again) != sorted(tensors) or any(
            again[n].tobytes() != tensors[n].tobytes() for n in tensors
        ):
            raise AssertionError("parameters changed in a round trip")
    with contextlib.suppress(ProtocolError):
        params_from_bytes(data)


# --- configuration -------------------------------------------------------------------------

_ENV_KEYS = ("VPN_IP", "VPN_SERVER_ENDPOINT", "MQTT_BROKER", "UPLOADS_URL")


#: The model an encoded update is a delta against (``encoded_update``), and its id.
CODEC_BASE = "c" * 64
CODECS = ("float16", "bfloat16", "int8")


@cache
def codec_reference() -> dict[str, Any]:
    import numpy as np

    return {
        "dense.weight": np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3),
        "dense.bias": np.zeros(3, dtype=np.float32),
        "steps": np.array([7], dtype=np.int64),
    }


def encoded_update(data: bytes) -> None:
    """A node's update under an update codec, as the researcher decodes it before any
    aggregator sees it (``researcher.update_codecs.CodecRounds.decode``): refused with
    ``ValidationError`` (or its ``ProtocolError``), or decoded into exactly the
    reference model's layout with every value finite."""
    import numpy as np

    from fedward.core.aggregation import layout_of
    from fedward.researcher.update_codecs import CodecRounds

    reference = codec_reference()
    layout = layout_of(reference)
    path = Scratch.file("update.safetensors", data)
    for codec in CODECS:
        rounds = CodecRounds(codec)  # as after a round that sent ``reference``
        rounds.reference, rounds.reference_id = reference, CODEC_BASE
        try:
            update = rounds.decode("node1", path)
        except ValidationError:
            continue
        if layout_of(update) != layout:
            raise AssertionError(f"{codec}: decoded into another layout")
        for name, values in update.items():
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise AssertionError(f"{codec}: {name} decoded with values not finite")


def env_file(data: bytes) -> None:
    """``config.env`` / ``fedward.env`` (``vpn.envfile``)."""
    from fedward.vpn.envfile import parse_env, render_env

    text = data.decode("utf-8", "replace")
    try:
        values = parse_env(text, source="fuzz.env", required=(), optional=_ENV_KEYS)
    except ValidationError:
        return
    again = parse_env(render_env(values), source="fuzz.env", required=(), optional=_ENV_KEYS)
    if again != values:
        raise AssertionError("env values changed in a round trip")


def toml_config(data: bytes) -> None:
    """Node and researcher TOML configuration (``config.loader``)."""
    from fedward.config.loader import load_node_config, load_researcher_config

    path = Scratch.file("config.toml", data)
    for load in (load_node_config, load_researcher_config):
        # An empty environment: the file alone decides.
        with contextlib.suppress(ConfigError, ValidationError):
            load(path, env={})


# --- the upload server ---------------------------------------------------------------------

FUZZ_PEER, FUZZ_TOKEN = "fuzz-peer", "fuzz-token-0123456789abcdef"
_ANSWERED = frozenset({200, 201, 400, 401, 404, 405, 408, 411, 413, 431, 501})


@cache
def _upload_app() -> Any:
    from fedward.uploads.app import create_app
    from fedward.uploads.tokens import set_token

    root = Scratch.root() / "uploads"
    tokens = root / "tokens.json"
    set_token(tokens, FUZZ_PEER, FUZZ_TOKEN)
    return create_app(root / "data", tokens, max_blob_bytes=4096)


def upload_request(data: bytes) -> int:
    """Bytes laid out like HTTP/1.1 requests, to the upload server's connection code
    (``uploads.http_connection`` with the ``uploads.app`` routes): request lines, methods,
    paths (with the kept and offer actions), the Authorization, Content-Length,
    X-Fedward-Readers and X-Fedward-Confirms headers, blob ids, bodies. Every request
    read gets a JSON answer with a status the server documents, never a 500."""
    answers = exchange(_upload_app(), data)
    for status, fields, body in answers:
        if status not in _ANSWERED:
            raise AssertionError(f"the upload server answered {status}")
        if fields.get("content-type") == "application/json" and body:  # (HEAD: no body)
            json.loads(body)
    return len(answers)


# --- plans ---------------------------------------------------------------------------------


def plan_source(data: bytes) -> None:
    """A plan's bytes as a node receives them: text, then its canonical form
    (``core.plan_digest``), which must be a fixed point."""
    from fedward.core.plan_digest import normalise_source, plan_digest, plan_text

    try:
        canonical = normalise_source(plan_text(data))
    except PlanError:
        return
    if normalise_source(canonical) != canonical:
        raise AssertionError("the canonical text is not a fixed point")
    plan_digest(canonical)


# --- datasets ------------------------------------------------------------------------------


def csv_table(data: bytes) -> None:
    """CSV sniffing: delimiter, header, column kinds (``learning.datasets.csv_table``)."""
    from fedward.learning.datasets.csv_table import inspect_csv, load_csv_xy

    path = Scratch.file("table.csv", data)
    try:
        info = inspect_csv(path)
    except DatasetError:
        return
    if info.shape[0] != info.sample_count or info.shape[1] != len(info.columns):
        raise AssertionError("inspect_csv describes another table than it counted")
    with contextlib.suppress(DatasetError):
        load_csv_xy(path)


@cache
def _dataset_service() -> Any:
    from fedward.node.services.factory import open_node_services

    root = Scratch.root() / "node"
    root.mkdir(exist_ok=True)
    return open_node_services(root / "node.db", data_root=None).datasets


def dataset_json(data: bytes) -> None:
    """``fedward node dataset add --from-json``: the JSON that describes a dataset."""
    path = Scratch.file("dataset.json", data)
    service = _dataset_service()
    with contextlib.suppress(DatasetError, ValidationError, Conflict):
        record = service.add_from_file(path)
        service.delete(record.dataset_id)


def idx_file(data: bytes) -> None:
    """IDX (MNIST) headers and data (``learning.datasets.mnist``)."""
    from fedward.learning.datasets.mnist import read_idx, read_idx_header

    path = Scratch.file("images-idx3-ubyte", data)
    try:
        header = read_idx_header(path)
    except DatasetError:
        return
    array = read_idx(path)
    if tuple(array.shape) != header.shape:
        raise AssertionError("read_idx gave another shape than its header")


def nifti_file(data: bytes) -> None:
    """NIfTI-1/2 headers and data sizes (``learning.datasets.nifti``)."""
    from fedward.learning.datasets.nifti import check_nifti_data, read_nifti_header

    path = Scratch.file("image.nii", data)
    with contextlib.suppress(DatasetError):
        image = read_nifti_header(path, Scratch.root())
        check_nifti_data(image, path, Scratch.root())


TARGETS: dict[str, Target] = {
    "codec": codec,
    "worker_report": worker_report,
    "mqtt_packets": mqtt_packets,
    "safetensors_header": safetensors_header,
    "params_wire": params_wire,
    "encoded_update": encoded_update,
    "env_file": env_file,
    "toml_config": toml_config,
    "upload_request": upload_request,
    "plan_source": plan_source,
    "csv_table": csv_table,
    "dataset_json": dataset_json,
    "idx_file": idx_file,
    "nifti_file": nifti_file,
}
