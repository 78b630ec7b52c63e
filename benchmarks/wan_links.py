"""The lab's site links: shaping them with ``tc`` and reading their byte counters.

Each site (the researcher, each node) reaches the lab's "internet" through a veth pair:
``eth0`` in the site's namespace, a bridge port in the internet namespace. A token
bucket (``tbf``) on ``eth0`` limits what the site sends, one on the bridge port what it
receives: a symmetric link of the given rate. The WireGuard packets cross it, so the
tunnel's overhead is paid on the shaped link, as on a hospital's line.

Only the rate is shaped. A delay (the 10-20 ms RTT of a hospital link) needs ``netem``,
and this kernel has no ``sch_netem`` (``tc qdisc add ... netem`` answers "Specified
qdisc kind is unknown"; no modules to load): ``benchmarks.wan`` says so in its report.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Site:
    name: str
    namespace: str
    internet: str  # the internet namespace, where the site's bridge port is
    port: str


@dataclass(frozen=True)
class Sites:
    sites: tuple[Site, ...]

    def to_json(self) -> list[dict[str, str]]:
        return [asdict(s) for s in self.sites]

    @classmethod
    def from_json(cls, data: list[dict[str, str]]) -> Sites:
        return cls(tuple(Site(**item) for item in data))


def _tc(namespace: str, *args: str, check: bool = True) -> None:
    done = subprocess.run(
        ["tc", "-n", namespace, *args], capture_output=True, text=True, timeout=30, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"tc -n {namespace} {' '.join(args)}: {done.stderr.strip()}")


def shape(sites: Sites, rate_mbit: float | None) -> None:
    """Every site's link at ``rate_mbit`` both ways; None: unshaped."""
    for site in sites.sites:
        for namespace, device in ((site.namespace, "eth0"), (site.internet, site.port)):
            if rate_mbit is None:
                _tc(namespace, "qdisc", "del", "dev", device, "root", check=False)
                continue
            # burst >= rate / HZ for the bucket to reach its rate; the queue holds 50 ms.
            burst = max(32_000, int(rate_mbit * 1e6 / 8 / 250))
            _tc(namespace, "qdisc", "replace", "dev", device, "root", "tbf",
                "rate", f"{rate_mbit:g}mbit", "burst", str(burst), "latency", "50ms")  # fmt: skip


def counters(sites: Sites) -> dict[str, dict[str, int]]:
    """Bytes each site's ``eth0`` sent (tx) and received (rx) so far."""
    out: dict[str, dict[str, int]] = {}
    for site in sites.sites:
        done = subprocess.run(
            ["ip", "-n", site.namespace, "-s", "-j", "link", "show", "eth0"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        stats: Any = json.loads(done.stdout)[0]["stats64"]
        out[site.name] = {"tx": int(stats["tx"]["bytes"]), "rx": int(stats["rx"]["bytes"])}
    return out
