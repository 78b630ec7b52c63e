"""The same no-op rounds on Flower's deployment runtime, for the side-by-side column.

Flower is installed by the benchmark into its own virtual environment
(``benchmarks/.flower-venv``, git-ignored), never into fedward's. One SuperLink and N
SuperNodes run on loopback (``--insecure``: fedward's loopback federation has no TLS
either); each cell is one ``flwr run`` of the app in ``benchmarks/flower_app``, whose
ServerApp times every round (send to all, wait for all, weighted mean) and whose
ClientApp reports the time of its "training" step, so overhead is computed exactly as
for fedward.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import summary

FLOWER_VERSION = "1.42.0"
BENCH_DIR = Path(__file__).resolve().parent
FLOWER_VENV = BENCH_DIR / ".flower-venv"
FLOWER_APP = BENCH_DIR / "flower_app"


class FlowerUnavailable(RuntimeError):
    """Flower could not be installed or started; the report says why."""


def ensure_flower(venv: Path = FLOWER_VENV) -> str:
    """Install ``flwr==FLOWER_VERSION`` into ``venv`` unless it is there; its version."""
    python = venv / "bin" / "python"
    stamp = venv / f".installed-flwr-{FLOWER_VERSION}"
    if not stamp.exists():
        if not python.exists():
            run = subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
            if run.returncode != 0:
                raise FlowerUnavailable(f"cannot create {venv}")
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"flwr=={FLOWER_VERSION}"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        if install.returncode != 0:
            raise FlowerUnavailable(f"pip install flwr=={FLOWER_VERSION} failed: {install.stderr}")
        stamp.touch()
    return FLOWER_VERSION


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FlowerUnavailable(f"Flower process exited with status {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise FlowerUnavailable(f"nothing listens on port {port} after {timeout_s:.0f} s")


class FlowerDeployment:
    """A SuperLink and ``node_count`` SuperNodes on loopback; ``run_rounds`` per cell."""

    def __init__(self, workdir: Path, node_count: int, venv: Path = FLOWER_VENV) -> None:
        self.workdir = workdir
        self.node_count = node_count
        self._bin = venv / "bin"
        self._home = workdir / "flwr-home"
        self._processes: list[subprocess.Popen[bytes]] = []
        self.port = 0

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        # SuperLink and SuperNode start their helpers (flower-superexec, flwr-serverapp,
        # flwr-clientapp) by name, from PATH.
        env["PATH"] = f"{self._bin}{os.pathsep}{env.get('PATH', '')}"
        env["FLWR_HOME"] = str(self._home)
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.workdir,
                start_new_session=True,  # its helpers share its process group: stop them all
            )
        finally:
            log.close()
        self._processes.append(process)
        return process

    def start(self) -> FlowerDeployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._home.mkdir(exist_ok=True)
        self.port = _free_port()
        (self._home / "config.toml").write_text(
            f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        superlink = self._spawn(
            "superlink",
            [
                str(self._bin / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-runtime-dependency-installation",  # no network here, none needed
            ],
        )
        _wait_port(self.port, superlink, timeout_s=60)
        for index in range(self.node_count):
            self._spawn(
                f"supernode{index:02d}",
                [
                    str(self._bin / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{self.port}",
                    "--port",
                    str(_free_port()),
                ],
            )
        return self

    def run_rounds(
        self, num_params: int, rounds: int, nodes: int, timeout_s: float
    ) -> list[dict[str, Any]]:
        """Rounds as the ServerApp timed them (``wall_s``, ``train_s`` per reply)."""
        results = self.workdir / f"rounds-{num_params}-{nodes}-{time.time_ns()}.json"
        config = (
            f"num-params={num_params} num-rounds={rounds} num-nodes={nodes} "
            f"results-file='{results}'"
        )
        flwr = [str(self._bin / "flwr"), "run", str(FLOWER_APP), "bench", "--stream"]
        log = (self.workdir / "flwr-run.log").open("ab")
        try:
            done = subprocess.run(
                [*flwr, "--run-config", config],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.workdir,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FlowerUnavailable(f"flwr run did not finish in {timeout_s:.0f} s") from exc
        finally:
            log.close()
        if not results.exists():
            raise FlowerUnavailable(
                f"flwr run exited with status {done.returncode} and no results; "
                f"see {self.workdir / 'flwr-run.log'}"
            )
        data = json.loads(results.read_text())
        if int(data["nodes"]) < nodes:
            raise FlowerUnavailable(f"only {data['nodes']} of {nodes} SuperNodes connected")
        rounds_done: list[dict[str, Any]] = data["rounds"]
        return rounds_done

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.poll() is None]

    def stop(self) -> None:
        for process in reversed(self._processes):
            _stop_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _stop_group(process, signal.SIGKILL)
            process.wait()
        self._processes.clear()

    def __enter__(self) -> FlowerDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The group id is the pid of the process we started (start_new_session=True).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def flower_cell(
    deployment: FlowerDeployment, num_params: int, nodes: int, rounds: int, timeout_s: float
) -> dict[str, Any]:
    """One warm-up round and ``rounds`` timed ones, summarised like fedward's cells."""
    measured = deployment.run_rounds(num_params, rounds + 1, nodes, timeout_s)
    if len(measured) < rounds + 1:
        raise FlowerUnavailable(f"Flower ran {len(measured)} of {rounds + 1} rounds")
    timed = measured[1:]
    for entry in measured:
        entry["compute_s"] = max(entry["train_s"], default=0.0)
        entry["overhead_s"] = entry["wall_s"] - entry["compute_s"]
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


def remove_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
