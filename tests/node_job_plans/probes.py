"""Plans that report what a job sees (as metrics), or misbehave, to test job isolation.

Each plan returns its parameters plus one and a sample count of 1; what it observed goes
in ``metrics`` (numbers only: 1.0 for yes, 0.0 for no).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedward.errors import DatasetError
from fedward.learning.plan import DatasetView, Progress, TrainingPlan, TrainOutcome


class PidPlan(TrainingPlan):
    """Reports which worker ran it (``worker``: a number drawn when the worker loaded the
    plan; the same number across rounds means a warm worker — process ids do not tell,
    since every worker may be pid 2 of its own namespace) and its process id.
    ``training_args["fail"]``: raise a ValueError, or (``"dataset"``) a DatasetError that
    names the dataset's path."""

    WORKER = float(int.from_bytes(os.urandom(6), "big"))
    extra_training_args = frozenset({"fail"})

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        if training_args.get("fail") == "dataset":
            raise DatasetError(f"cannot read {dataset.path} (in {dataset.path.parent})")
        if training_args.get("fail"):
            raise ValueError("asked to fail")
        metrics = {"worker": self.WORKER, "pid": float(os.getpid()), "uid": float(os.getuid())}
        return TrainOutcome({k: v + 1 for k, v in params.items()}, 1, metrics)


class MemoryHogPlan(TrainingPlan):
    """Allocates ``model_args["megabytes"]`` MiB at once."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        progress.scalar("started", 1.0, 0)
        hog = np.ones(int(self.model_args["megabytes"]) * 1024 * 1024 // 8)
        return TrainOutcome(params, 1, {"held": float(hog.nbytes)})


class SpinPlan(TrainingPlan):
    """Burns CPU forever, after telling the researcher it started."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        progress.scalar("started", 1.0, 0)
        spins = 0
        while spins >= 0:
            spins += 1
        return TrainOutcome(params, 1)


class SleepPlan(TrainingPlan):
    """Waits forever without using CPU: only the deadline stops it."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        progress.scalar("started", 1.0, 0)
        while True:
            time.sleep(0.1)


class NapPlan(TrainingPlan):
    """Sleeps ``training_args["nap_s"]`` seconds, then adds one to the parameters and
    reports the worker's process id."""

    extra_training_args = frozenset({"nap_s"})

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        progress.scalar("started", 1.0, 0)
        time.sleep(float(training_args.get("nap_s", 0.0)))
        return TrainOutcome({k: v + 1 for k, v in params.items()}, 1, {"pid": float(os.getpid())})


class DevicePlan(TrainingPlan):
    """Reports the device the node assigned (-1 for CPU, else the CUDA index); with
    ``model_args["use_device"]`` it also runs a small matrix product there (``cuda_ok``)."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        device = self.device()
        metrics = {"cuda_index": -1.0 if device == "cpu" else float(device.split(":")[1])}
        if device != "cpu" and self.model_args.get("use_device"):
            import torch

            x = torch.ones(64, 64, device=device)
            metrics["cuda_ok"] = float((x @ x).sum().item() == 64.0 * 64 * 64)
        return TrainOutcome(params, 1, metrics)


class TorchImportPlan(TrainingPlan):
    """Imports torch and trains one step of a linear layer: what torch plans need to start."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        import torch

        layer = torch.nn.Linear(4, 1)
        loss = layer(torch.ones(8, 4)).pow(2).mean()
        loss.backward()
        return TrainOutcome(params, 1, {"loss": float(loss.item())})


class ThreadsPlan(TrainingPlan):
    """Reports the thread budget it runs under: ``omp_num_threads`` (the variable, 0 when
    unset) and ``torch_threads`` (torch's intra-op pool). With ``model_args["set_first"]``
    it sets OMP_NUM_THREADS and MKL_NUM_THREADS (torch reads both) itself and imports torch
    while it is constructed, as a plan could, before the worker starts its job."""

    def __init__(self, model_args: Mapping[str, Any] | None = None) -> None:
        super().__init__(model_args)
        if "set_first" in self.model_args:
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[name] = str(self.model_args["set_first"])
            import torch  # noqa: F401

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        omp = float(os.environ.get("OMP_NUM_THREADS", "0"))
        import torch

        threads = float(torch.get_num_threads())
        torch.ones(64, 64) @ torch.ones(64, 64)  # the pool at work, sized as reported
        return TrainOutcome(params, 1, {"omp_num_threads": omp, "torch_threads": threads})


class SnoopPlan(TrainingPlan):
    """Tries what a hostile plan would: read the files in ``model_args["paths"]`` (label ->
    path; a folder is listed and its files read), connect to ``model_args["connect"]``
    (host, port), signal the daemon. Reports ``read:<label>``, ``tcp_connect``,
    ``signal_parent``, ``env:<NAME>`` for every environment variable, ``uid``,
    ``capabilities`` and ``bounding_capabilities`` (masks)."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        metrics: dict[str, float] = {}
        for label, raw in self.model_args.get("paths", {}).items():
            path = Path(raw)
            got = b""
            try:
                targets = sorted(path.rglob("*")) if path.is_dir() else [path]
                got = b"listed" if path.is_dir() and targets else b""
                for target in targets:
                    if target.is_file():
                        got += target.read_bytes()[:64]
            except OSError:
                pass
            metrics[f"read:{label}"] = float(bool(got))
        host, port = self.model_args.get("connect", ["127.0.0.1", 9])
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                metrics["tcp_connect"] = 1.0
        except OSError:
            metrics["tcp_connect"] = 0.0
        try:
            os.kill(os.getppid(), 0)  # signal 0: only asks whether we could
            metrics["signal_parent"] = 1.0
        except OSError:
            metrics["signal_parent"] = 0.0
        for name in os.environ:
            metrics[f"env:{name}"] = 1.0
        status = [line.split() for line in Path("/proc/self/status").read_text().splitlines()]
        caps = {words[0]: int(words[1], 16) for words in status if words[0].startswith("Cap")}
        metrics["capabilities"] = float(caps["CapEff:"])
        metrics["bounding_capabilities"] = float(caps["CapBnd:"])
        metrics["uid"] = float(os.getuid())
        return TrainOutcome(params, 1, metrics)
