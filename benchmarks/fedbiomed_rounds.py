"""The same no-op rounds on Fed-BioMed, for the side-by-side column (like Flower's).

Fed-BioMed is installed by the benchmark into its own virtual environment
(``benchmarks/.fedbiomed-venv``, git-ignored), never into fedward's. Its researcher and
nodes talk gRPC on loopback: each node is a ``fedbiomed node -p DIR start`` process
(component created with ``fedbiomed component create``, a 3-row CSV added with
``fedbiomed node dataset add --file``), and each cell is one run of
``benchmarks/fedbiomed_app/researcher_bench.py`` (an ``Experiment`` whose rounds are
timed around ``run_once``; the nodes' ``rtime_training`` is the compute subtracted).

Why the install pins PyPI's torch build: the node CLI and the researcher's workflows
import torchvision, and PyPI's torchvision 0.28.0 wheel (the release that matches
torch 2.13.0) is linked against the CUDA build of torch (``libtorch_cuda.so``,
``libc10_cuda.so``); with the CPU-only torch 2.13.0 wheel that this machine's pip
configuration prefers, importing it fails with "operator torchvision::nms does not
exist", and no CPU torchvision wheel or source distribution is on PyPI. So the venv is
installed with ``pip --isolated`` (PyPI only): ``torch==2.13.0`` (the CUDA build, which
runs on CPU; ~5 GB with its nvidia-* wheels, the first time) and
``torchvision==0.28.0``. ``fedbiomed[researcher]`` brings the researcher's imports
(tensorboard, pathvalidate) that plain ``fedbiomed`` does not declare.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from benchmarks.stats import summary

FEDBIOMED_VERSION = "6.4.1"
REQUIREMENTS = (
    f"fedbiomed[researcher]=={FEDBIOMED_VERSION}",
    "torch==2.13.0",
    "torchvision==0.28.0",
)
BENCH_DIR = Path(__file__).resolve().parent
FEDBIOMED_VENV = BENCH_DIR / ".fedbiomed-venv"
RESEARCHER_SCRIPT = BENCH_DIR / "fedbiomed_app" / "researcher_bench.py"
TAG = "fedward-bench"
_IMPORT_CHECK = (
    "import torchvision.ops, fedbiomed.node.cli, fedbiomed.researcher.federated_workflows"
)


class FedBiomedUnavailable(RuntimeError):
    """Fed-BioMed could not be installed or run; the report says why."""


class _Cell(Protocol):  # benchmarks.run.Cell (not imported: run imports this module)
    @property
    def num_params(self) -> int: ...
    @property
    def nodes(self) -> int: ...
    @property
    def fedbiomed_rounds(self) -> int | None: ...
    @property
    def fedbiomed_skip_reason(self) -> str: ...


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def ensure_fedbiomed(venv: Path = FEDBIOMED_VENV) -> str:
    """Install Fed-BioMed into ``venv`` unless it is there and imports; its version."""
    python = venv / "bin" / "python"
    stamp = venv / f".installed-fedbiomed-{FEDBIOMED_VERSION}"
    if not stamp.exists():
        made = (
            python.exists()
            or not subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False).returncode
        )
        if not made:
            raise FedBiomedUnavailable(f"cannot create {venv}")
        install = subprocess.run(
            [str(python), "-m", "pip", "--isolated", "install", "-q", *REQUIREMENTS],
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            raise FedBiomedUnavailable(
                f"pip install {' '.join(REQUIREMENTS)} failed: {_last_line(install.stderr)}"
            )
    with tempfile.TemporaryDirectory(prefix="fedbiomed-check-") as scratch:
        # Importing the researcher creates its component folder in the working directory.
        check = subprocess.run(
            [str(python), "-c", _IMPORT_CHECK],
            capture_output=True,
            text=True,
            check=False,
            cwd=scratch,
        )
    if check.returncode != 0:
        raise FedBiomedUnavailable(f"Fed-BioMed does not import: {_last_line(check.stderr)}")
    stamp.touch()
    return FEDBIOMED_VERSION


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FedBiomedDeployment:
    """``node_count`` Fed-BioMed nodes on loopback, and a researcher run per cell."""

    def __init__(self, workdir: Path, node_count: int, venv: Path = FEDBIOMED_VENV) -> None:
        self.workdir = workdir
        self.node_count = node_count
        self._bin = venv / "bin"
        self._processes: list[subprocess.Popen[bytes]] = []
        self.port = 0

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env["PATH"] = f"{self._bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(
            FBM_SERVER_HOST="127.0.0.1",
            FBM_SERVER_PORT=str(self.port),
            FBM_RESEARCHER_IP="127.0.0.1",
            FBM_RESEARCHER_PORT=str(self.port),
            FBM_SECURITY_TRAINING_PLAN_APPROVAL="False",  # as fedward's bench nodes
            FBM_RESEARCHER_COMPONENT_ROOT=str(self.workdir / "researcher"),
        )
        return env

    def _cli(self, *argv: str, timeout_s: float = 180) -> None:
        done = subprocess.run(
            [str(self._bin / "fedbiomed"), *argv],
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.workdir,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise FedBiomedUnavailable(
                f"fedbiomed {' '.join(argv[:4])} failed: {_last_line(done.stderr or done.stdout)}"
            )

    def start(self) -> FedBiomedDeployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._cli("component", "create", "-c", "researcher", "-p", str(self.workdir / "researcher"))
        data = self.workdir / "bench.csv"
        data.write_text("x,y\n0.5,0\n1.5,1\n2.5,0\n")
        for index in range(self.node_count):
            root = self.workdir / f"node{index:02d}"
            self._cli("component", "create", "-c", "node", "-p", str(root))
            description = root / "dataset.json"
            description.write_text(
                json.dumps(
                    {
                        "path": str(data),
                        "data_type": "csv",
                        "description": "no-op benchmark data",
                        "tags": TAG,
                        "name": "bench",
                    }
                )
            )
            self._cli("node", "-p", str(root), "dataset", "add", "--file", str(description))
            log = (self.workdir / f"node{index:02d}.log").open("ab")
            try:
                self._processes.append(
                    subprocess.Popen(
                        [str(self._bin / "fedbiomed"), "node", "-p", str(root), "start"],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=self._env(),
                        cwd=self.workdir,
                        start_new_session=True,  # the node's own subprocess is in its group
                    )
                )
            finally:
                log.close()
        return self

    def run_rounds(
        self, num_params: int, rounds: int, nodes: int, timeout_s: float
    ) -> list[dict[str, Any]]:
        """Rounds as the researcher script timed them (``wall_s``, ``train_s`` per reply)."""
        results = self.workdir / f"rounds-{num_params}-{nodes}-{time.time_ns()}.json"
        argv = [str(num_params), str(nodes), str(rounds), str(results), TAG]
        log = (self.workdir / "researcher.log").open("ab")
        try:
            done = subprocess.run(
                [str(self._bin / "python"), str(RESEARCHER_SCRIPT), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.workdir,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FedBiomedUnavailable(
                f"the researcher did not finish in {timeout_s:.0f} s"
            ) from exc
        finally:
            log.close()
        if not results.exists():
            tail = _last_line((self.workdir / "researcher.log").read_text(errors="replace"))
            raise FedBiomedUnavailable(
                f"the researcher exited with status {done.returncode} and no results: {tail}"
            )
        data = json.loads(results.read_text())
        rounds_done: list[dict[str, Any]] = data["rounds"]
        return rounds_done

    def stop(self) -> None:
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._processes.clear()

    def __enter__(self) -> FedBiomedDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fedbiomed_cell(
    deployment: FedBiomedDeployment, num_params: int, nodes: int, rounds: int, timeout_s: float
) -> dict[str, Any]:
    """One warm-up round and ``rounds`` timed ones, summarised like fedward's cells."""
    measured = deployment.run_rounds(num_params, rounds + 1, nodes, timeout_s)
    if len(measured) < rounds + 1:
        raise FedBiomedUnavailable(f"Fed-BioMed ran {len(measured)} of {rounds + 1} rounds")
    if any(r["replies"] < nodes for r in measured):
        raise FedBiomedUnavailable(f"a round had fewer than {nodes} replies: {measured}")
    for entry in measured:
        entry["compute_s"] = max(entry["train_s"], default=0.0)
        entry["overhead_s"] = entry["wall_s"] - entry["compute_s"]
    timed = measured[1:]
    return {
        "num_params": num_params,
        "nodes": nodes,
        "overhead_s": summary([r["overhead_s"] for r in timed]),
        "wall_s": summary([r["wall_s"] for r in timed]),
        "warmup_wall_s": measured[0]["wall_s"],
        "rounds": [
            {k: r[k] for k in ("wall_s", "overhead_s", "compute_s", "replies")} for r in timed
        ],
    }


def run_fedbiomed(cells: tuple[_Cell, ...], workdir: Path) -> dict[str, Any]:
    """The Fed-BioMed section of ``benchmarks.run``: every cell it is asked for."""
    try:
        version = ensure_fedbiomed()
    except FedBiomedUnavailable as exc:
        return {"error": str(exc), "cells": []}
    out: dict[str, Any] = {"version": version, "cells": []}
    wanted = [cell for cell in cells if cell.fedbiomed_rounds is not None]
    for cell in cells:
        if cell.fedbiomed_rounds is None:
            key = {"num_params": cell.num_params, "nodes": cell.nodes}
            out["cells"].append({**key, "skipped": cell.fedbiomed_skip_reason})
    if not wanted:
        return out
    node_count = max(cell.nodes for cell in wanted)
    try:
        with FedBiomedDeployment(workdir / "fedbiomed", node_count) as deployment:
            for cell in wanted:
                assert cell.fedbiomed_rounds is not None
                print(
                    f"Fed-BioMed {cell.num_params / 1e6:g}M x {cell.nodes} ...",
                    file=sys.stderr,
                    flush=True,
                )
                key = {"num_params": cell.num_params, "nodes": cell.nodes}
                try:
                    out["cells"].append(
                        fedbiomed_cell(
                            deployment, cell.num_params, cell.nodes, cell.fedbiomed_rounds, 900
                        )
                    )
                except Exception as exc:
                    out["cells"].append({**key, "error": str(exc)})
    except FedBiomedUnavailable as exc:
        out["error"] = str(exc)
    return out
