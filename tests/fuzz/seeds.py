"""Valid inputs for each fuzz target: the corpus the fuzzer starts from.

A coverage-guided fuzzer finds its way into a format much faster from a few real
files than from nothing: these are the smallest honest examples of each format.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct

import numpy as np

from tests.fuzz.targets import FUZZ_PEER, FUZZ_TOKEN


def _messages() -> list[bytes]:
    from fedward.core.messages import (
        ErrorReply,
        NodePresence,
        PingRequest,
        PongReply,
        TrainReply,
        TrainRequest,
    )
    from fedward.protocol.codec import encode, encode_presence

    sha = "a" * 64
    return [
        encode(PingRequest(request_id="req-1")),
        encode(PongReply(request_id="req-1", version="0.1.0")),
        encode(ErrorReply(request_id="req-1", code="invalid", message="no")),
        encode(
            TrainRequest(
                request_id="req-2",
                experiment_id="exp-1",
                round_index=3,
                dataset_id="ds-1",
                plan_blob=sha,
                plan_digest="sha256:" + sha,
                plan_class="Plan",
                params_blob=sha,
                model_args={"n_features": 30},
                training_args={"epochs": 1, "lr": 0.1},
                deadline_s=60.0,
            )
        ),
        encode(
            TrainReply(
                request_id="req-2",
                experiment_id="exp-1",
                round_index=3,
                params_blob=sha,
                sample_count=10,
                metrics={"loss": 0.5},
            )
        ),
        encode_presence(NodePresence(state="online", instance_id="inst-1", version="0.1.0")),
    ]


def _worker_reports() -> list[bytes]:
    from fedward.node.jobs import wire

    job = "job-1f2e3d4c"
    reports = [
        wire.ScalarOut(job_id=job, name="loss", value=0.25, step=3),
        wire.LogOut(job_id=job, level="info", message="epoch 1\tdone"),
        wire.ResultOut(
            job_id=job,
            sample_count=120,
            metrics={"accuracy": 0.9},
            timings={"load_s": 0.01, "train_s": 1.5, "save_s": 0.02},
            extras=["control"],
            threads=2,
        ),
        wire.FailureOut(
            job_id=job,
            code="plan_error",
            message="ValueError: bad shape",
            exception="ValueError",
            frames=[wire.PlanFrameOut(line=12, function="train")],
        ),
    ]
    return [wire.encoder.encode(report) for report in reports]


def _mqtt_streams() -> list[bytes]:
    from fedward.broker.packets import PacketType, encode_packet, encode_publish

    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("!H", len(raw)) + raw

    connect = encode_packet(
        PacketType.CONNECT,
        0,
        text("MQTT")
        + bytes([4, 0x02 | 0x04 | 0x08 | 0x80 | 0x40])
        + struct.pack("!H", 30)
        + text("node1")
        + text("fedward/v1/presence/node1")
        + text("gone")
        + text("node1")
        + text("secret"),
    )
    subscribe = encode_packet(
        PacketType.SUBSCRIBE, 0x02, struct.pack("!H", 1) + text("fedward/v1/node/+") + b"\x01"
    )
    unsubscribe = encode_packet(
        PacketType.UNSUBSCRIBE, 0x02, struct.pack("!H", 2) + text("fedward/v1/#")
    )
    publish = encode_publish("fedward/v1/researcher/r/node1", b'{"type":"pong"}', 1, False, 3)
    puback = encode_packet(PacketType.PUBACK, 0, struct.pack("!H", 3))
    ping = encode_packet(PacketType.PINGREQ, 0, b"")
    bye = encode_packet(PacketType.DISCONNECT, 0, b"")
    return [connect, connect + subscribe + publish + puback + ping + unsubscribe + bye]


def _safetensors() -> list[bytes]:
    from fedward.protocol.params_wire import params_to_bytes

    return [
        params_to_bytes({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}),
        params_to_bytes({"b": np.zeros(2, dtype=np.float64), "n": np.array(3, dtype=np.int64)}),
        params_to_bytes({"mask": np.array([True, False]), "h": np.ones(1, dtype=np.float16)}),
    ]


def _encoded_updates() -> list[bytes]:
    from fedward.core import update_codec
    from fedward.core.aggregation import layout_of
    from fedward.protocol.update_wire import encoded_bytes
    from tests.fuzz.targets import CODEC_BASE, CODECS, codec_reference

    reference = codec_reference()
    trained = {
        name: values + np.asarray(0.25, dtype=values.dtype) if values.dtype.kind == "f" else values
        for name, values in reference.items()
    }
    delta = update_codec.delta_of(trained, reference)
    return [
        encoded_bytes(codec, update_codec.encode(codec, delta), CODEC_BASE, layout_of(reference))
        for codec in CODECS
    ]


def _env() -> list[bytes]:
    return [
        b"# fedward peer\nVPN_IP=10.220.0.5\nMQTT_BROKER=10.220.0.2\n",
        b"export UPLOADS_URL=http://10.220.0.3:8000\nVPN_SERVER_ENDPOINT=vpn.example:51820\n",
    ]


def _toml() -> list[bytes]:
    return [
        b'node_id = "node1"\nstate_dir = "/tmp/n"\n[broker]\nhost = "127.0.0.1"\nport = 1883\n'
        b'[uploads]\nurl = "http://127.0.0.1:8000"\n[training]\napproval_required = true\n'
        b'[jobs]\nmemory_mb = 512\nsandbox = "basic"\nrequire = ["no_network"]\n'
        b'[gpu]\nmode = "off"\n',
        b'researcher_id = "r1"\n[broker]\nkeepalive_s = 30\nusername = "r1"\n',
    ]


def _requests() -> list[bytes]:
    body = b"hello"
    blob_id = hashlib.sha256(body).hexdigest().encode()
    auth = f"authorization: Bearer {FUZZ_TOKEN}".encode()
    return [
        b"GET /health HTTP/1.1\r\n\r\n",
        b"PUT /blobs/" + blob_id + b" HTTP/1.1\r\n" + auth + b"\r\ncontent-length: 5\r\n"
        b"x-fedward-readers: node1," + FUZZ_PEER.encode() + b"\r\n\r\n" + body,
        b"GET /blobs/" + blob_id + b" HTTP/1.1\r\n" + auth + b"\r\n\r\n",
        b"GET /blobs/"
        + blob_id
        + b" HTTP/1.1\r\n"
        + auth
        + b"\r\nx-fedward-confirms: kept\r\n\r\n",
        b"POST /blobs/" + blob_id + b"/kept HTTP/1.1\r\n" + auth + b"\r\ncontent-length: 0\r\n\r\n",
        b"POST /blobs/" + blob_id + b"/offer HTTP/1.1\r\n" + auth + b"\r\n\r\n",
        b"DELETE /blobs/" + blob_id + b" HTTP/1.1\r\nauthorization: Basic eA==\r\n\r\n",
    ]


def _plans() -> list[bytes]:
    return [
        b'import numpy as np\n\n\nclass Plan:\n    """Doc."""\n\n    def f(self, x):\n'
        b"        return np.sum(x) + 1  # comment\n",
        b"from a import (b,\n  c)\nx = [i ** 2 for i in range(3) if i]\n@d\n"
        b"class K(B, metaclass=M):\n    async def g(self): await h(*a, **k)\n",
    ]


def _csv() -> list[bytes]:
    return [
        b"age,weight,label\n31,70.5,1\n45,NA,0\n",
        b"\xef\xbb\xbfa;b\n1;x\n2;y\n",
        b"1\t2\t3\n4\t5\t6\n",
    ]


def _dataset_json() -> list[bytes]:
    return [
        b'{"data_type": "csv", "path": "table.csv", "name": "t", "tags": ["a", "b"],'
        b' "description": "d", "options": {"target_column": "label"}}',
        b'{"data_type": "medical-folder", "path": "x", "name": "m", "tags": "a,b",'
        b' "options": {"demographics": "d.csv"}}',
    ]


def _idx() -> list[bytes]:
    images = struct.pack(">4B3I", 0, 0, 0x08, 3, 2, 2, 2) + bytes(range(8))
    labels = struct.pack(">4BI", 0, 0, 0x08, 1, 2) + b"\x01\x02"
    floats = struct.pack(">4B2I", 0, 0, 0x0D, 2, 1, 2) + struct.pack(">2f", 1.0, 2.0)
    return [images, labels, floats, gzip.compress(images)]


def _nifti() -> list[bytes]:
    import nibabel

    out = []
    for image_class in (nibabel.Nifti1Image, nibabel.Nifti2Image):
        image = image_class(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4))
        out.append(image.to_bytes())
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        handle.write(out[0])
    out.append(buffer.getvalue())
    return out


SEEDS = {
    "codec": _messages,
    "worker_report": _worker_reports,
    "mqtt_packets": _mqtt_streams,
    "safetensors_header": _safetensors,
    "params_wire": _safetensors,
    "encoded_update": _encoded_updates,
    "env_file": _env,
    "toml_config": _toml,
    "upload_request": _requests,
    "plan_source": _plans,
    "csv_table": _csv,
    "dataset_json": _dataset_json,
    "idx_file": _idx,
    "nifti_file": _nifti,
}


def seeds(target: str) -> list[bytes]:
    return SEEDS[target]()
