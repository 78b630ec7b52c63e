"""Plans an administrator approved in good faith, written by an attacker who read the
worker's code. Each class is self-contained source (plans travel as their file's imports
plus the class). ``model_args["attack"]`` picks the attack; what the plan managed to do
comes back as metrics (1.0: it got through) when the job survives at all.
"""

from __future__ import annotations

import ctypes
import fcntl
import inspect
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedward.learning.plan import DatasetView, Progress, TrainingPlan, TrainOutcome


class EscapePlan(TrainingPlan):
    """Tries to reach outside the sandbox; reports each try as a metric."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        attack = str(self.model_args["attack"])
        target = self.model_args.get("target")
        try:
            escaped = float(getattr(self, attack)(target))
        except OSError:
            escaped = 0.0
        return TrainOutcome({k: v + 1 for k, v in params.items()}, 1, {"escaped": escaped})

    def tcp(self, target: Any) -> bool:
        with socket.create_connection((target[0], int(target[1])), timeout=2):
            return True

    def udp(self, target: Any) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"patient-rows", (target[0], int(target[1])))
        return True

    def mptcp(self, target: Any) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262) as sock:
            sock.settimeout(2)
            sock.connect((target[0], int(target[1])))
        return True

    def raw(self, target: Any) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP):
            return True

    def packet(self, target: Any) -> bool:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW):
            return True

    def netlink(self, target: Any) -> bool:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0):
            return True

    def unix_path(self, target: Any) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(target))
            sock.sendall(b"patient-rows")
        return True

    def unix_abstract(self, target: Any) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect("\0" + str(target))
            sock.sendall(b"patient-rows")
        return True

    def io_uring(self, target: Any) -> bool:
        params = ctypes.create_string_buffer(120)
        fd = ctypes.CDLL(None, use_errno=True).syscall(425, 8, params)  # io_uring_setup
        return fd >= 0

    def new_user_namespace(self, target: Any) -> bool:
        return ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x40000000) == 0

    def ptrace_parent(self, target: Any) -> bool:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.ptrace(16, os.getppid(), 0, 0) == 0  # PTRACE_ATTACH

    def read(self, target: Any) -> bool:
        return len(Path(str(target)).read_bytes()) >= 0

    def tamper_plan(self, target: Any) -> bool:
        """Rewrite the plan file the worker imported, for the next round to run."""
        Path(inspect.getfile(type(self))).write_text("import os\n")
        return True

    def write(self, target: Any) -> bool:
        Path(str(target)).write_text("tampered by a plan\n")
        return True

    def signal_daemon(self, target: Any) -> bool:
        os.kill(int(target), signal.SIGTERM)
        return True

    def forks(self, target: Any) -> int:
        """How many children it could start (all wait, then exit)."""
        children = []
        try:
            for _ in range(int(target)):
                pid = os.fork()
                if pid == 0:
                    time.sleep(3)
                    os._exit(0)
                children.append(pid)
        except OSError:
            pass
        return len(children)


class ForgeryPlan(TrainingPlan):
    """Speaks the worker's protocol itself: forged reports, and forged result files (the
    descriptors a result report carries), or plants files where results once lay."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    @staticmethod
    def _worker_frame() -> Any:
        """The worker's ``run`` frame: its ``spec`` (job id) and its ``self._out``."""
        for info in inspect.stack():
            if "spec" in info.frame.f_locals and hasattr(info.frame.f_locals["spec"], "job_id"):
                return info.frame.f_locals
        raise RuntimeError("no worker frame")

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        attack = str(self.model_args["attack"])
        frame = self._worker_frame()
        spec, out = frame["spec"], frame["self"]._out
        target = self.model_args.get("target")
        honest = TrainOutcome({k: v + 1 for k, v in params.items()}, 1)
        if attack == "planted":
            # Where results were read from before they came sealed: nothing reads there.
            Path(f"{spec.job_id}.params.safetensors").symlink_to(str(target))
            os.mkfifo(f"{spec.job_id}.scaffold_delta_control.safetensors")
            return honest
        sock = out._sock
        if attack in self.FILE_ATTACKS:
            files = self._forged_files(attack, honest.params, target)
            line = self._forged_line("result", spec, target)
            if attack == "files_with_a_scalar":
                line = (
                    json.dumps(
                        {"type": "log", "job_id": spec.job_id, "level": "info", "message": "hi"}
                    )
                    + "\n"
                ).encode()
            socket.send_fds(sock, [line], files)
        else:
            sock.sendall(self._forged_line(attack, spec, target))
        time.sleep(30)  # the daemon must act on the forged report, not wait for this
        return honest

    FILE_ATTACKS = (
        "unsealed_then_rewritten",
        "dataset_file",
        "pipe",
        "sparse_sealed",
        "no_file",
        "two_files",
        "files_with_a_scalar",
    )

    @staticmethod
    def _forged_files(attack: str, params: dict[str, np.ndarray], target: Any) -> list[int]:
        from fedward.protocol.params_writer import params_to_bytes

        data = params_to_bytes(params)
        memory = os.memfd_create("result", os.MFD_ALLOW_SEALING)
        os.write(memory, data)
        seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
        if attack == "unsealed_then_rewritten":
            # Honest bytes when passed, then something else: read before or after, the
            # daemon must not take a file that can change.
            def rewrite() -> None:
                time.sleep(0.01)
                for _ in range(2000):
                    os.pwrite(memory, b"\xff" * len(data), 0)
                    time.sleep(0.001)

            threading.Thread(target=rewrite, daemon=True).start()
            return [memory]
        if attack == "dataset_file":
            return [os.open(str(target), os.O_RDONLY)]
        if attack == "pipe":
            read_end, write_end = os.pipe()
            os.write(write_end, data)
            return [read_end]
        if attack == "sparse_sealed":
            os.truncate(memory, int(target))
        fcntl.fcntl(memory, fcntl.F_ADD_SEALS, seals)
        if attack == "no_file":
            return []
        if attack in ("two_files", "files_with_a_scalar"):
            return [memory] * 12 if attack == "files_with_a_scalar" else [memory, memory]
        return [memory]

    @staticmethod
    def _forged_line(attack: str, spec: Any, target: Any) -> bytes:
        base = {"type": "result", "job_id": spec.job_id, "sample_count": 1}
        base |= {"metrics": {}, "timings": {}}
        if attack == "extras_path":
            base["extras"] = [str(target)]
        elif attack == "old_extras_out":
            base["extras_out"] = {"scaffold_delta_control": str(target)}
            Path(f"{spec.job_id}.params.safetensors").write_bytes(b"")
        elif attack == "other_job":
            base["job_id"] = "job-someone-else"
        elif attack == "huge_sample_count":
            base["sample_count"] = 10**12
        elif attack == "metric_name":
            base["metrics"] = {"loss\n[fedward] approved all plans": 0.0}
        elif attack == "endless_line":
            return b"x" * (1 << 20)
        elif attack == "not_json":
            return b"\x00\xff{]\n"
        return (json.dumps(base) + "\n").encode()


class ResultPlan(TrainingPlan):
    """Returns a result the daemon must refuse: wrong layout, non-finite values, a lie."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        attack = str(self.model_args["attack"])
        new = {k: v + 1 for k, v in params.items()}
        count = 1
        extras: dict[str, dict[str, np.ndarray]] = {}
        if attack == "extra_tensor":
            new["stolen"] = np.frombuffer(dataset.path.read_bytes()[:64], dtype=np.uint8)
        elif attack == "reshaped":
            new = {k: np.zeros((4, 4)) for k in params}
        elif attack == "nan":
            new = {k: np.full_like(v, np.nan) for k, v in params.items()}
        elif attack == "inf":
            new = {k: np.full_like(v, np.inf) for k, v in params.items()}
        elif attack == "more_samples_than_rows":
            count = 10**6
        elif attack == "unknown_extra":
            extras["exfiltration"] = {"w": np.zeros(2)}
        elif attack == "scalar_flood":
            for step in range(20_000):
                progress.scalar("loss", 0.5, step)
        return TrainOutcome(new, count, {}, extras=extras)


class ProcessPlan(TrainingPlan):
    """Misbehaves with processes, memory and disk."""

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {"w": np.zeros(2)}

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        attack = str(self.model_args["attack"])
        marker = str(self.model_args.get("marker", "fedward-test-marker"))
        progress.scalar("started", 1.0, 0)
        if attack == "setsid_child":
            subprocess.Popen(
                ["sleep", "300", marker], start_new_session=True, stdout=subprocess.DEVNULL
            )
            time.sleep(300)
        elif attack == "child_holds_pipe":
            # A child keeps every descriptor (the report pipe included); the worker dies.
            if os.fork() == 0:
                os.setsid()
                os.execvp("sleep", ["sleep", "300", marker])
            os._exit(0)
        elif attack == "memory_in_children":
            for _ in range(4):
                if os.fork() == 0:
                    block = bytearray(int(self.model_args["megabytes"]) << 20)
                    block[::4096] = b"x" * len(block[::4096])
                    time.sleep(60)
                    os._exit(0)
            time.sleep(60)
        elif attack == "cpu_in_children":
            for _ in range(2):
                if os.fork() == 0:
                    while True:
                        pass
            time.sleep(300)
        elif attack == "fill_disk":
            for index in range(10_000):
                Path(f"junk-{index}").write_bytes(os.urandom(1 << 20))
        elif attack == "stuck":
            time.sleep(300)
        return TrainOutcome({k: v + 1 for k, v in params.items()}, 1)
