"""A researcher with an ordinary broker account who sends hand-made train requests."""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from fedward.core.ids import new_id
from fedward.core.messages import Reply, ScalarEvent, TrainRequest
from fedward.core.plan_digest import plan_digest
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source
from fedward.protocol.params_wire import params_to_bytes


class RawResearcher:
    """Sends one train request at a time and watches the node's progress events."""

    def __init__(self, fed: LocalFederation, node_id: str, tags: list[str]) -> None:
        self.node_id = node_id
        self.federation = fed.researcher()
        self.events: queue.Queue[ScalarEvent] = queue.Queue()
        self.federation.add_event_sink(
            lambda _node, event: self.events.put(event) if isinstance(event, ScalarEvent) else None
        )
        self.dataset_id = self.federation.search(tags)[node_id][0].dataset_id
        self._seen: set[tuple[str, str]] = set()

    def send(
        self, plan: type[TrainingPlan], model_args: dict[str, Any] | None = None, **fields: Any
    ) -> tuple[TrainRequest, queue.Queue[Reply | None]]:
        """Send a request for ``plan``'s source, as a researcher's ``Experiment`` would."""
        return self.send_source(plan_source(plan).encode(), plan.__name__, model_args, **fields)

    def send_source(
        self,
        source: bytes,
        plan_class: str,
        model_args: dict[str, Any] | None = None,
        params: bytes | None = None,
        **fields: Any,
    ) -> tuple[TrainRequest, queue.Queue[Reply | None]]:
        """Send a request with these exact plan bytes; its reply (None if none came)
        lands in the returned queue."""
        blobs = self.federation.blobs
        readers = [self.node_id]
        try:
            digest = fields.pop("plan_digest", None) or plan_digest(source.decode("utf-8"))
        except ValueError:  # bytes a node must refuse: the digest field says nothing then
            digest = "sha256:" + "0" * 64
        request = TrainRequest(
            request_id=self.federation.new_request_id(),
            experiment_id=new_id("exp"),
            round_index=0,
            dataset_id=self.dataset_id,
            plan_blob=blobs.put_bytes(source, readers=readers),
            plan_digest=digest,
            plan_class=plan_class,
            params_blob=blobs.put_bytes(
                params if params is not None else params_to_bytes({"w": np.zeros(2)}),
                readers=readers,
            ),
            model_args=model_args or {},
            **{"deadline_s": 60.0, **fields},
        )
        replies: queue.Queue[Reply | None] = queue.Queue()

        def wait() -> None:
            answers = self.federation.ask({self.node_id: request}, request.deadline_s + 10)
            replies.put(next((a.reply for a in answers), None))

        threading.Thread(target=wait, daemon=True).start()
        return request, replies

    def wait_started(self, request: TrainRequest, timeout_s: float = 60) -> None:
        """Until the job of ``request`` said it started (events of others are kept)."""
        while (request.request_id, "started") not in self._seen:
            event = self.events.get(timeout=timeout_s)
            self._seen.add((event.request_id, event.name))

    def node_answers_ping(self) -> bool:
        return self.node_id in self.federation.ping(timeout_s=10)
