"""The lab's record of what it created, written *before* each thing is created.

``lab down`` reads only this file, so it can undo a lab whose ``up`` failed halfway: it
stops the recorded processes, brings the recorded tunnels down and deletes the recorded
namespaces; whatever does not exist (any more) is skipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedward.errors import Conflict, NotFound, VpnError
from fedward.lab.topology import LabTopology
from fedward.storage.atomic import atomic_write_text

STATE_NAME = "lab.json"


@dataclass(frozen=True)
class LabProcess:
    name: str
    component: str
    pid: int


@dataclass(frozen=True)
class LabTunnel:
    component: str
    folder: str  # the enrolment folder (peers) or the server state dir (vpnserver)


@dataclass
class LabState:
    lab_dir: Path
    lab_id: str
    nodes: int
    namespaces: list[str] = field(default_factory=list)
    tunnels: list[LabTunnel] = field(default_factory=list)
    processes: list[LabProcess] = field(default_factory=list)
    ready: bool = False

    @property
    def topology(self) -> LabTopology:
        return LabTopology(self.lab_id, self.nodes)

    @property
    def path(self) -> Path:
        return self.lab_dir / STATE_NAME

    def save(self) -> None:
        data: dict[str, Any] = asdict(self)
        data["lab_dir"] = str(self.lab_dir)
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n", mode=0o600)

    def record_namespace(self, namespace: str) -> None:
        self.namespaces.append(namespace)
        self.save()

    def record_tunnel(self, tunnel: LabTunnel) -> None:
        self.tunnels.append(tunnel)
        self.save()

    def record_process(self, process: LabProcess) -> None:
        self.processes.append(process)
        self.save()

    def process(self, name: str) -> LabProcess:
        for process in self.processes:
            if process.name == name:
                return process
        raise NotFound(f"the lab has no process {name!r}")

    @classmethod
    def load(cls, lab_dir: Path) -> LabState:
        path = Path(lab_dir) / STATE_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFound(f"no lab in {lab_dir}", hint="start one: fedward lab up") from exc
        except ValueError as exc:
            raise VpnError(f"the lab state {path} is damaged: {exc}") from exc
        return cls(
            lab_dir=Path(data["lab_dir"]),
            lab_id=data["lab_id"],
            nodes=data["nodes"],
            namespaces=list(data["namespaces"]),
            tunnels=[LabTunnel(**t) for t in data["tunnels"]],
            processes=[LabProcess(**p) for p in data["processes"]],
            ready=bool(data["ready"]),
        )

    @classmethod
    def create(cls, lab_dir: Path, lab_id: str, nodes: int) -> LabState:
        lab_dir = Path(lab_dir).absolute()
        if (lab_dir / STATE_NAME).exists():
            raise Conflict(f"a lab already exists in {lab_dir}", hint="fedward lab down first")
        lab_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = cls(lab_dir, lab_id, nodes)
        LabTopology(lab_id, nodes)  # validates the node count before anything exists
        state.save()
        return state
