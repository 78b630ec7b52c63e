"""Run inside a lab namespace (``ip netns exec NS python lab_probe.py ...``) by the lab tests.

It acts as a peer with the settings of its enrolment folder's ``fedward.env``, through the
real ``MqttChannel`` and ``HttpBlobStore``, and prints one JSON line per answer.

    mqtt-login ENVFILE                  {"ok": true} or {"ok": false, "error": ...}
    acl ENVFILE                         subscribes to fedward/#, prints {"ready": true};
                                        then reads JSON lines: {"publish": [topics]} or
                                        {"report": true} (prints what it received), "quit"
    blob-put ENVFILE READER...          {"blob_id": ...}
    blob-get ENVFILE BLOB_ID            {"sha256": ...} or {"error": ..., "kind": ...}
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from pathlib import Path

from fedward.config.loader import broker_endpoint, uploads_endpoint
from fedward.config.model import BrokerEndpoint, UploadsEndpoint
from fedward.errors import FedwardError
from fedward.transport.http_blobs import HttpBlobStore
from fedward.transport.mqtt import MqttChannel


def read_env(path: str) -> dict[str, str]:
    lines = Path(path).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def endpoints(path: str) -> tuple[str, BrokerEndpoint, UploadsEndpoint]:
    env = read_env(path)
    peer_id = env.get("NODE_ID") or env["RESEARCHER_ID"]
    return peer_id, broker_endpoint({}, env, Path.cwd()), uploads_endpoint({}, env, Path.cwd())


def say(**answer: object) -> None:
    print(json.dumps(answer), flush=True)


def mqtt_login(env_file: str) -> None:
    peer_id, broker, _ = endpoints(env_file)
    try:
        MqttChannel(broker, f"{peer_id}-probe", connect_timeout_s=5).close()
    except FedwardError as exc:
        say(ok=False, error=str(exc), kind=type(exc).__name__)
    else:
        say(ok=True)


def acl(env_file: str) -> None:
    peer_id, broker, _ = endpoints(env_file)
    received: list[str] = []
    lock = threading.Lock()

    def handler(topic: str, payload: bytes) -> None:
        with lock:
            received.append(payload.decode())

    channel = MqttChannel(broker, f"{peer_id}-acl")
    channel.subscribe("fedward/#", handler)
    say(ready=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command == "quit":
            break
        if "publish" in command:
            for topic in command["publish"]:
                channel.publish(topic, f"{peer_id}|{topic}".encode())
            say(published=channel.flush(10))
        elif "report" in command:
            with lock:
                say(received=sorted(received))
    channel.close()


def blob_put(env_file: str, readers: list[str]) -> None:
    _, _, uploads = endpoints(env_file)
    assert uploads.token is not None
    with HttpBlobStore(uploads.base_url, uploads.token.reveal()) as store:
        say(blob_id=store.put_bytes(b"lab blob " + "/".join(readers).encode(), readers))


def blob_get(env_file: str, blob_id: str) -> None:
    _, _, uploads = endpoints(env_file)
    assert uploads.token is not None
    try:
        with HttpBlobStore(uploads.base_url, uploads.token.reveal(), timeout_s=10) as store:
            say(sha256=hashlib.sha256(store.get_bytes(blob_id)).hexdigest())
    except FedwardError as exc:
        say(error=str(exc), kind=type(exc).__name__)


def main(argv: list[str]) -> None:
    command, env_file, *rest = argv
    if command == "mqtt-login":
        mqtt_login(env_file)
    elif command == "acl":
        acl(env_file)
    elif command == "blob-put":
        blob_put(env_file, rest)
    elif command == "blob-get":
        blob_get(env_file, rest[0])
    else:
        raise SystemExit(f"unknown probe command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
