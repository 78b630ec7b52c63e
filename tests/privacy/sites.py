"""Several node daemons in one process, on an in-memory broker and blob store, with their
real job workers and SQLite; the researcher's real ``Experiment`` on top.

``PrivateSites.reference_update(node_id, global_params)`` recomputes what a node's
``ShiftPlan`` returns, so a test can tell exactly what each node sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedward.config.model import NodeConfig, PrivacyPolicy
from fedward.core.params import Params
from fedward.learning.plan import DatasetView, NullProgress
from fedward.node.daemon import NodeDaemon
from fedward.node.services import NodeServices, open_node_services_for
from fedward.node.wiring import build_node_daemon
from fedward.researcher import Experiment
from fedward.researcher.federation import Federation
from fedward.transport.channel import Channel, Will
from fedward.transport.memory import (
    MemoryBlobClient,
    MemoryBlobStore,
    MemoryBroker,
    MemoryChannel,
)
from tests.node_job_plans.privacy_plans import ShiftPlan

RESEARCHER = "researcher-1"
TAGS = ["privacy-test"]


class RecordingBlobs:
    """The researcher's blob client, keeping a copy of every blob it downloads."""

    def __init__(self, inner: MemoryBlobClient) -> None:
        self._inner = inner
        self.downloaded: dict[str, bytes] = {}

    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str:
        return self._inner.put_bytes(data, readers)

    def put_file(
        self,
        path: Path,
        readers: Sequence[str],
        *,
        blob_id: str | None = None,
        on_accepted: Callable[[], object] | None = None,
    ) -> str:
        return self._inner.put_file(path, readers, blob_id=blob_id, on_accepted=on_accepted)

    def get_bytes(self, blob_id: str, *, max_bytes: int | None = None) -> bytes:
        data = self._inner.get_bytes(blob_id, max_bytes=max_bytes)
        self.downloaded[blob_id] = data
        return data

    def get_file(
        self, blob_id: str, dest: Path, *, max_bytes: int | None = None, durable: bool = True
    ) -> Path:
        path = self._inner.get_file(blob_id, dest, max_bytes=max_bytes, durable=durable)
        self.downloaded[blob_id] = path.read_bytes()
        return path

    def confirm_kept(self, blob_id: str) -> None:
        self._inner.confirm_kept(blob_id)

    def offer_again(self, blob_id: str) -> bool:
        return self._inner.offer_again(blob_id)


@dataclass
class PrivateSites:
    root: Path
    node_ids: list[str]
    policies: dict[str, PrivacyPolicy] = field(default_factory=dict)
    #: Wraps the researcher's channel (a hostile researcher rewrites what it sends).
    researcher_channel: Callable[[MemoryChannel], Channel] | None = None

    def __post_init__(self) -> None:
        self.broker = MemoryBroker()
        self.blob_space = MemoryBlobStore()
        self.daemons: dict[str, NodeDaemon] = {}
        self.services: dict[str, NodeServices] = {}
        self.data: dict[str, Path] = {}
        for index, node_id in enumerate(self.node_ids):
            self._start_node(index, node_id)
        self.blobs = RecordingBlobs(self.blob_space.as_peer(RESEARCHER))
        channel: Channel = self.broker.connect("researcher")
        if self.researcher_channel is not None:
            channel = self.researcher_channel(channel)  # type: ignore[arg-type]
        self.federation = Federation(RESEARCHER, channel, self.blobs)  # type: ignore[arg-type]
        self.federation.settle_presence(timeout_s=1.0)

    def _start_node(self, index: int, node_id: str) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        table = self.root / "data" / f"{node_id}.csv"
        rng = np.random.default_rng(index)
        rows = 20 + 7 * index
        values = rng.normal(size=(rows, 2))
        table.write_text("x,label\n" + "".join(f"{a:.5f},{int(b > 0)}\n" for a, b in values))
        self.data[node_id] = table
        config = NodeConfig(
            node_id=node_id,
            state_dir=self.root / node_id,
            approval_required=False,
            privacy=self.policies.get(node_id, PrivacyPolicy()),
        )
        services = open_node_services_for(config)
        services.datasets.add("csv", table, "table", TAGS)

        def channel_factory(client_id: str, will: Will) -> Channel:
            return self.broker.connect(client_id, will)

        daemon = build_node_daemon(
            config,
            channel_factory=channel_factory,
            blobs=self.blob_space.as_peer(node_id),
            services=services,
            warn=lambda _: None,
        )
        daemon.start(presence_wait_s=0.05)
        self.daemons[node_id] = daemon
        self.services[node_id] = services

    def experiment(self, **kwargs: Any) -> Experiment:
        options: dict[str, Any] = {
            "tags": TAGS,
            "training_plan": ShiftPlan,
            "model_args": {"size": 2000},
            "federation": self.federation,
            "round_timeout_s": 120,
            "progress": False,
            "checkpoints": False,
        }
        options.update(kwargs)
        return Experiment(**options)

    def reference_update(self, node_id: str, global_params: Params) -> tuple[Params, int]:
        view = DatasetView(node_id, "csv", self.data[node_id])
        outcome = ShiftPlan({"size": 2000}).train(
            {k: v.copy() for k, v in global_params.items()}, view, {}, NullProgress()
        )
        return outcome.params, outcome.sample_count

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop()
        for services in self.services.values():
            services.close()
