"""``benchmarks/results/wan.md`` from the WAN section's results (``benchmarks.wan``)."""

from __future__ import annotations

from typing import Any

M = 1_000_000

NOTES = """\
- Links: the researcher's and each node's, shaped both ways with `tc tbf`; the broker and
  the upload server are unshaped ("data centre"). Every byte goes through `wireguard-go`
  (userspace) twice: site -> hub -> service.
- **No RTT emulated**: this kernel has no `sch_netem` (`tc qdisc add ... netem`: "Specified
  qdisc kind is unknown"), so the 20 ms / 10 ms round trips are not in these times. A round
  is a chain of about 8 request/response steps (MQTT request, 2 GETs, 2 PUTs with TCP
  slow start, reply): at 20 ms RTT expect roughly +0.2-0.5 s per round, small next to 25M
  rounds, a large share of 1M ones.
- Bytes: what crossed the site links (interface counters around the timed round),
  WireGuard, IP and TCP headers included. `researcher MB` is its link (up + down),
  `sites MB` all shaped links together.
- Each codec runs one warm-up round unshaped (a codec sends the full model once, then
  deltas), then one timed round per rate: the timed rounds are steady-state rounds.
- 200 Mbit/s is more than this machine moves through the lab: `wireguard-go` carries
  ~26-29 MB/s here (`benchmarks/results/latest.md`, tunnel), every byte crosses two
  tunnels, and the machine's 2 cores are shared with other work, so the 200 Mbit/s rows
  measure the CPU as much as the link (see "What bounds the rounds").
- Floors at the shaped rate: `link` = the busiest direction of any site link;
  `relay` = researcher up + node down + node up + researcher down in series, as the
  upload server stores and forwards each blob.
"""


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f}"


def _rounds_table(rounds: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model x nodes | link | codec | round s | vs plain | researcher MB | sites MB "
        "| link floor s | relay floor s | round / relay floor |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    plain = {
        (r["params"], r["nodes"], r["rate_mbit"]): r["wall_s"]
        for r in rounds
        if r["codec"] == "none"
    }
    for r in rounds:
        key = (r["params"], r["nodes"], r["rate_mbit"])
        base = plain.get(key)
        researcher = r["bytes"]["researcher"]["tx"] + r["bytes"]["researcher"]["rx"]
        sites = sum(m["tx"] + m["rx"] for m in r["bytes"].values())
        lines.append(
            f"| {r['params'] / M:g}M x {r['nodes']} | {r['rate_mbit']:g} Mbit/s | {r['codec']} "
            f"| {r['wall_s']:.2f} | {r['wall_s'] / base:.2f} | {_mb(researcher)} | {_mb(sites)} "
            f"| {r['link_floor_s']:.2f} | {r['relay_floor_s']:.2f} "
            f"| {r['wall_s'] / r['relay_floor_s']:.2f} |"
            if base
            else f"| {r['params'] / M:g}M x {r['nodes']} | {r['rate_mbit']:g} | {r['codec']} "
            f"| {r['wall_s']:.2f} | - | {_mb(researcher)} | {_mb(sites)} | - | - | - |"
        )
    return lines


def done_when(results: dict[str, Any]) -> list[str]:
    """The issue's figure: 25M x 2 at 50 Mbit/s, float16 vs plain, and digits accuracy."""
    rounds = results.get("rounds", [])
    cell = {
        r["codec"]: r
        for r in rounds
        if r["params"] == 25 * M and r["nodes"] == 2 and r["rate_mbit"] == 50
    }
    accuracy = results.get("accuracy", {}).get("digits", {})
    lines = ["## Done-when figure", ""]
    if "none" in cell and "float16" in cell:
        ratio = cell["float16"]["wall_s"] / cell["none"]["wall_s"]
        verdict = "met" if ratio <= 0.6 else "missed"
        lines.append(
            f"- 25M x 2 at 50 Mbit/s: float16 round {cell['float16']['wall_s']:.1f} s vs plain "
            f"{cell['none']['wall_s']:.1f} s: **{ratio:.2f}x** (target <= 0.6: {verdict})"
        )
    else:
        lines.append("- 25M x 2 at 50 Mbit/s: not measured in this run")
    if "none" in accuracy and "float16" in accuracy:
        loss = (accuracy["none"] - accuracy["float16"]) * 100
        verdict = "met" if loss <= 0.5 else "missed"
        lines.append(
            f"- digits accuracy: float16 {accuracy['float16']:.4f} vs plain "
            f"{accuracy['none']:.4f}: "
            f"**{loss:+.2f} points lost** (target <= 0.5: {verdict})"
        )
    return [*lines, ""]


def bound_by(rounds: list[dict[str, Any]]) -> list[str]:
    """Per rate, how close the rounds came to the relay floor: near 1 the link sets the
    round time; well above it the machine (wireguard-go's crypto, 2 shared cores) does."""
    lines = []
    for rate in sorted({r["rate_mbit"] for r in rounds}):
        ratios = sorted(r["wall_s"] / r["relay_floor_s"] for r in rounds if r["rate_mbit"] == rate)
        middle = ratios[len(ratios) // 2]
        verdict = "link-bound" if middle < 1.3 else "CPU-bound (the link is not the limit)"
        lines.append(
            f"- {rate:g} Mbit/s: round / relay floor {ratios[0]:.2f}-{ratios[-1]:.2f}, "
            f"median {middle:.2f}: {verdict}"
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = ["# WAN rounds: shaped site links through WireGuard, per update codec", ""]
    if not results.get("measured"):
        return "\n".join([*lines, f"Not measured: {results.get('reason', '?')}", ""])
    if "error" in results:
        lines += [f"**The lab part failed**: `{results['error']}`", ""]
    lines += done_when(results)
    if results.get("rounds"):
        lines += ["## Round time and bytes on the wire", "", *_rounds_table(results["rounds"]), ""]
        lines += ["What bounds the rounds:", "", *bound_by(results["rounds"]), ""]
    accuracy = results.get("accuracy", {})
    if "error" in accuracy:
        lines += [f"Accuracy not measured: `{accuracy['error']}`", ""]
    elif accuracy:
        codecs = list(accuracy["digits"])
        lines += [
            "## Final held-out accuracy per codec (loopback federation, same seeds)",
            "",
            "| experiment | " + " | ".join(codecs) + " |",
            "|---|" + "---:|" * len(codecs),
        ]
        for name, row in accuracy.items():
            lines.append(f"| {name} | " + " | ".join(f"{row[c]:.4f}" for c in codecs) + " |")
        lines.append("")
    lines += ["## How it is measured", "", NOTES]
    lines.append(f"Lab part: {results.get('lab_s', 0):.0f} s.")
    return "\n".join(lines) + "\n"
