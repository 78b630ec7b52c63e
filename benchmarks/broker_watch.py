"""How long a copied-in revocation takes to lock a peer out of the broker.

    python -m benchmarks.broker_watch [--repeats 5]

``fedward broker run`` (Mosquitto, then the embedded broker) serves two peers; the
files that drop one of them are rendered in another folder, as on another host, and
copied over the broker's with a plain copy. Measured from the start of the copy: until
the revoked peer's CONNECT is refused, and until its open connection is dropped. The
other peer must stay connected. Target: refused within 5 s. Writes
``benchmarks/results/broker-watch.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedward.broker.peers import BrokerPeer
from fedward.broker.process import free_port
from fedward.broker.render import render_broker_config
from fedward.config.model import BrokerEndpoint, Secret
from fedward.errors import AccessDenied, TransportError
from fedward.transport.mqtt import MqttChannel

RESULTS = Path(__file__).resolve().parent / "results" / "broker-watch.md"
TARGET_S = 5.0
_PASSWORDS = {"stays": "pw-stays-0123456789", "revoked": "pw-revoked-0123456789"}


def _peers(*names: str) -> list[BrokerPeer]:
    return [BrokerPeer("node", name, Secret(_PASSWORDS[name])) for name in names]


def _endpoint(port: int, name: str) -> BrokerEndpoint:
    return BrokerEndpoint("127.0.0.1", port, name, Secret(_PASSWORDS[name]))


def _connect(port: int, name: str, timeout_s: float = 15.0) -> MqttChannel:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return MqttChannel(_endpoint(port, name), f"{name}-bench", connect_timeout_s=2)
        except (TransportError, AccessDenied):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _refused(port: int, name: str) -> bool:
    try:
        MqttChannel(_endpoint(port, name), f"{name}-probe", connect_timeout_s=2).close()
    except AccessDenied:
        return True
    return False


def measure_once(workdir: Path, embedded: bool, deadline_s: float = 60.0) -> tuple[float, float]:
    """(seconds until refused, seconds until dropped) for one revocation."""
    port = free_port()
    live, elsewhere = workdir / "broker", workdir / "elsewhere"
    render_broker_config(_peers("stays", "revoked"), live, "127.0.0.1", port)
    command = [sys.executable, "-m", "fedward.cli", "broker", "run", "--config-dir", str(live)]
    broker = subprocess.Popen(
        [*command, *(["--embedded"] if embedded else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stays, revoked = _connect(port, "stays"), _connect(port, "revoked")
        render_broker_config(_peers("stays"), elsewhere, "127.0.0.1", port)
        started = time.monotonic()
        shutil.copyfile(elsewhere / "passwords", live / "passwords")
        shutil.copyfile(elsewhere / "acl", live / "acl")
        refused_s = dropped_s = None
        while refused_s is None or dropped_s is None:
            elapsed = time.monotonic() - started
            if elapsed > deadline_s:
                raise RuntimeError("the revocation did not take effect")
            if dropped_s is None and not revoked.connected:
                dropped_s = elapsed
            if refused_s is None and _refused(port, "revoked"):
                refused_s = time.monotonic() - started
            time.sleep(0.02)
        if not stays.connected:
            raise RuntimeError("the peer that was not revoked lost its connection")
        revoked.close()
        stays.close()
        return refused_s, dropped_s
    finally:
        broker.terminate()
        broker.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    lines = [
        "# Broker follows its files: revocation to refusal",
        "",
        f"`python -m benchmarks.broker_watch`: {options.repeats} revocations per broker, "
        "each a plain copy of re-rendered passwords and ACL files over the running "
        f"broker's. Target: refused within {TARGET_S:g} s.",
        "",
        "| broker | refused: median (min-max) s | open connection dropped: median (min-max) s |",
        "|---|---|---|",
    ]
    worst = 0.0
    for embedded in (False, True):
        refused, dropped = [], []
        for _ in range(options.repeats):
            with tempfile.TemporaryDirectory(prefix="fedward-broker-watch-") as workdir:
                r, d = measure_once(Path(workdir), embedded)
            refused.append(r)
            dropped.append(d)
        worst = max(worst, *refused)
        name = "embedded" if embedded else "mosquitto"
        lines.append(f"| {name} | {_spread(refused)} | {_spread(dropped)} |")
        print(lines[-1], flush=True)
    verdict = "within" if worst <= TARGET_S else "OVER"
    lines += ["", f"Worst refusal {worst:.2f} s: {verdict} the {TARGET_S:g} s target.", ""]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0 if worst <= TARGET_S else 1


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    sys.exit(main())
