"""A 100 MB blob through the WireGuard lab, against the same transfer on loopback.

The lab (``fedward.lab``, root only) puts the researcher, a node and the upload server in
their own network namespaces, connected only through ``wireguard-go`` tunnels via the
VPN hub: the researcher uploads the blob, the node downloads it, each with
``benchmarks.blob_probe`` run inside its namespace. The loopback figures use the same
probe against an upload server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.stats import summary

REPO = Path(__file__).resolve().parent.parent


def _probe(prefix: list[str], *args: str) -> dict[str, Any]:
    command = [*prefix, sys.executable, "-m", "benchmarks.blob_probe", *args]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"blob probe failed: {done.stderr.strip()[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def transfer_times(
    put_prefix: list[str],
    put_peer: list[str],
    get_prefix: list[str],
    get_peer: list[str],
    reader: str,
    size_mb: int,
    repeats: int,
) -> dict[str, Any]:
    """Upload then download a fresh ``size_mb`` blob ``repeats`` times."""
    puts, gets = [], []
    for repeat in range(repeats):
        seed = str(int.from_bytes(os.urandom(4), "little") + repeat)
        put = _probe(put_prefix, "put", *put_peer, "--size-mb", str(size_mb), "--reader", reader,
                     "--seed", seed)  # fmt: skip
        got = _probe(get_prefix, "get", put["blob_id"], *get_peer)
        puts.append(put["seconds"])
        gets.append(got["seconds"])
    mb = size_mb * 1e6
    return {
        "upload_s": summary(puts),
        "download_s": summary(gets),
        "upload_mb_per_s": mb / 1e6 / summary(puts)["median"],
        "download_mb_per_s": mb / 1e6 / summary(gets)["median"],
    }


def loopback_transfer(
    uploads_url: str, researcher_token: Path, node_token: Path, node_id: str, size_mb: int,
    repeats: int,
) -> dict[str, Any]:  # fmt: skip
    return transfer_times(
        [],
        ["--url", uploads_url, "--token-file", str(researcher_token)],
        [],
        ["--url", uploads_url, "--token-file", str(node_token)],
        node_id,
        size_mb,
        repeats,
    )


def lab_transfer(workdir: Path, size_mb: int, repeats: int) -> dict[str, Any]:
    """The same transfers between the lab's researcher and node1 namespaces."""
    if os.geteuid() != 0:
        return {"measured": False, "reason": "needs root (network namespaces, WireGuard)"}
    missing = [tool for tool in ("ip", "wg") if shutil.which(tool) is None]
    if missing:
        return {"measured": False, "reason": f"missing tools: {', '.join(missing)}"}
    from fedward.lab.deploy import lab_down, lab_up, peer_folder

    lab_dir = workdir / "lab"
    try:
        state = lab_up(lab_dir, 1)
    except Exception as exc:  # any failure of the lab is reported, not fatal to the run
        lab_down(lab_dir)
        return {"measured": False, "reason": f"fedward lab up failed: {exc}"}
    try:

        def inside(component: str) -> list[str]:
            return ["ip", "netns", "exec", state.topology.namespace(component)]

        def env_of(component: str) -> list[str]:
            return ["--env-file", str(peer_folder(state, component) / "fedward.env")]

        result = transfer_times(
            inside("researcher"),
            env_of("researcher"),
            inside("node1"),
            env_of("node1"),
            "node1",
            size_mb,
            repeats,
        )
        result["measured"] = True
        return result
    except Exception as exc:
        return {"measured": False, "reason": f"transfer through the lab failed: {exc}"}
    finally:
        problems = lab_down(lab_dir)
        if problems:
            print(f"lab down warnings: {problems}", file=sys.stderr)
