"""``Experiment``: rounds of federated training across the nodes that hold matching data.

One round: upload the global parameters once (readable by the selected nodes only), send
one ``TrainRequest`` per node, fold each update into the aggregator the moment it arrives
(reading it tensor by tensor from disk), and stop waiting at the round deadline. Nodes
that fail or are late are dropped from that round and named in the history; the round
fails only when fewer than ``min_replies`` nodes answered.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fedward.core.ids import new_id, validate_id
from fedward.core.messages import (
    ApprovalRequest,
    DatasetSummary,
    ErrorReply,
    Message,
    PlanStatusReply,
    PlanStatusRequest,
    TrainReply,
    TrainRequest,
)
from fedward.core.params import Params
from fedward.core.plan_digest import plan_digest
from fedward.errors import FederationError, NotFound, ValidationError
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source
from fedward.protocol.params_wire import open_params, params_to_bytes
from fedward.researcher.aggregators import Aggregator, FedAvg
from fedward.researcher.federation import Federation
from fedward.researcher.history import NodeRound, RoundRecord

log = logging.getLogger("fedward.researcher")

RoundCallback = Callable[[RoundRecord], None]


class Experiment:
    def __init__(
        self,
        *,
        tags: Sequence[str],
        training_plan: type[TrainingPlan],
        model_args: Mapping[str, Any] | None = None,
        training_args: Mapping[str, Any] | None = None,
        rounds: int = 1,
        aggregator: Aggregator | None = None,
        nodes: Sequence[str] | None = None,
        round_timeout_s: float = 600.0,
        min_replies: int = 1,
        federation: Federation | None = None,
        experiment_id: str | None = None,
        seed: int = 0,
        on_round: RoundCallback | None = None,
    ) -> None:
        if rounds < 1:
            raise ValidationError("rounds must be at least 1")
        if not tags:
            raise ValidationError("give at least one dataset tag to look for")
        self.tags = list(tags)
        self.training_plan = training_plan
        self.model_args = dict(model_args or {})
        self.training_args = dict(training_args or {})
        self.rounds = rounds
        self.aggregator = aggregator or FedAvg()
        self.wanted_nodes = list(nodes) if nodes is not None else None
        self.round_timeout_s = round_timeout_s
        self.min_replies = min_replies
        self.experiment_id = validate_id(experiment_id or new_id("exp"), kind="experiment id")
        self.seed = seed
        self.history: list[RoundRecord] = []
        self._on_round = on_round
        self._federation = federation
        self._owns_federation = federation is None
        self._global: Params | None = None
        self._source = plan_source(training_plan)
        self._plan_digest = plan_digest(self._source)
        self._plan_blob: str | None = None
        self._datasets: dict[str, DatasetSummary] | None = None

    # --- public API -----------------------------------------------------------------

    @property
    def federation(self) -> Federation:
        if self._federation is None:
            from fedward.researcher.connect import connect

            self._federation = connect()
        return self._federation

    @property
    def round_index(self) -> int:
        """The index of the next round to run."""
        return len(self.history)

    @property
    def plan_digest(self) -> str:
        return self._plan_digest

    def aggregated_params(self) -> Params:
        return dict(self._global_params())

    def training_replies(self) -> list[RoundRecord]:
        return list(self.history)

    def nodes(self) -> dict[str, DatasetSummary]:
        """The node chosen for each dataset, found by tags (asked once, then kept)."""
        if self._datasets is None:
            found = self.federation.search(self.tags)
            if self.wanted_nodes is not None:
                found = {n: d for n, d in found.items() if n in self.wanted_nodes}
            if not found:
                raise FederationError(
                    f"no online node has a dataset with tags {self.tags}",
                    hint="check the nodes are started (fedward researcher nodes) and the tags",
                )
            chosen: dict[str, DatasetSummary] = {}
            for node_id, datasets in sorted(found.items()):
                if len(datasets) > 1:
                    log.warning(
                        "node %s has %d datasets with these tags; using %s",
                        node_id,
                        len(datasets),
                        datasets[0].dataset_id,
                    )
                chosen[node_id] = datasets[0]
            self._datasets = chosen
        return dict(self._datasets)

    def request_approval(self, description: str = "", timeout_s: float = 30.0) -> dict[str, str]:
        """Submit the plan to every selected node for review; the node status per node.

        A node keeps the request as Pending until its administrator approves or rejects it
        (``fedward node plan approve|reject`` or the node GUI).
        """
        selected = sorted(self.nodes())
        plan_blob = self._upload_plan(selected)
        requests = {
            node_id: ApprovalRequest(
                request_id=self.federation.new_request_id(),
                plan_blob=plan_blob,
                plan_digest=self._plan_digest,
                plan_class=self.training_plan.__name__,
                description=description,
            )
            for node_id in selected
        }
        return self._statuses(requests, timeout_s)

    def plan_status(self, timeout_s: float = 30.0) -> dict[str, str]:
        """The plan's status on every selected node: approved, pending, rejected or unknown
        (``"error: ..."`` or ``"no answer"`` when a node could not tell)."""
        selected = sorted(self.nodes())
        plan_blob = self._upload_plan(selected)
        requests = {
            node_id: PlanStatusRequest(
                request_id=self.federation.new_request_id(),
                plan_blob=plan_blob,
                plan_digest=self._plan_digest,
            )
            for node_id in selected
        }
        return self._statuses(requests, timeout_s)

    def _statuses(self, requests: Mapping[str, Message], timeout_s: float) -> dict[str, str]:
        statuses = dict.fromkeys(requests, "no answer")
        for answer in self.federation.ask(requests, timeout_s):
            reply = answer.reply
            if isinstance(reply, PlanStatusReply):
                statuses[answer.node_id] = reply.status
                if reply.notes:
                    statuses[answer.node_id] += f" ({reply.notes})"
            elif isinstance(reply, ErrorReply):
                statuses[answer.node_id] = f"error: {reply.message}"
        return statuses

    def run(self) -> list[RoundRecord]:
        try:
            while self.round_index < self.rounds:
                self.run_once()
        finally:
            if self._owns_federation and self._federation is not None:
                self._federation.close()
                self._federation = None
        return self.history

    def run_once(self) -> RoundRecord:
        round_index = self.round_index
        started = time.monotonic()
        federation = self.federation
        datasets = self.nodes()
        selected = sorted(datasets)
        global_params = self._global_params()
        plan_blob = self._upload_plan(selected)
        params_blob = federation.blobs.put_bytes(params_to_bytes(global_params), readers=selected)
        self.aggregator.begin_round(global_params, round_index)
        requests = {
            node_id: self._train_request(
                node_id, datasets[node_id], round_index, plan_blob, params_blob
            )
            for node_id in selected
        }
        results: dict[str, NodeRound] = {}
        with tempfile.TemporaryDirectory(prefix="fedward-round-") as scratch:
            for answer in federation.ask(requests, self.round_timeout_s):
                elapsed = time.monotonic() - started
                results[answer.node_id] = self._fold(
                    answer.node_id, answer.reply, Path(scratch), elapsed
                )
        for node_id in selected:
            if node_id not in results:
                results[node_id] = NodeRound(
                    node_id, "late", error=f"no reply within {self.round_timeout_s:.0f} s"
                )
                log.warning(
                    "round %d: node %s did not answer in time; dropped from this round",
                    round_index,
                    node_id,
                )
        record = RoundRecord(round_index, results, duration_s=time.monotonic() - started)
        if len(record.succeeded) < self.min_replies:
            details = "; ".join(
                f"{r.node_id}: {r.status} {r.error}".strip()
                for r in results.values()
                if r.status != "ok"
            )
            raise FederationError(
                f"round {round_index} got {len(record.succeeded)} update(s), "
                f"fewer than the minimum of {self.min_replies} ({details})"
            )
        self._global = self.aggregator.finish()
        self.history.append(record)
        if self._on_round is not None:
            self._on_round(record)
        return record

    # --- steps --------------------------------------------------------------------------

    def _global_params(self) -> Params:
        if self._global is None:
            self._global = self.training_plan(self.model_args).init_params(self.seed)
        return self._global

    def _upload_plan(self, readers: list[str]) -> str:
        # Re-uploading the same content only extends its readers; cheap and keeps it simple.
        self._plan_blob = self.federation.blobs.put_bytes(
            self._source.encode("utf-8"), readers=readers
        )
        return self._plan_blob

    def _train_request(
        self,
        node_id: str,
        dataset: DatasetSummary,
        round_index: int,
        plan_blob: str,
        params_blob: str,
    ) -> TrainRequest:
        training_args = {
            "seed": self.seed,
            **self.training_args,
            **self.aggregator.training_args_for_node(node_id),
        }
        extra_blobs: dict[str, str] = {}
        for name, tensors in self.aggregator.extras_for_node(node_id).items():
            extra_blobs[name] = self.federation.blobs.put_bytes(
                params_to_bytes(tensors), readers=[node_id]
            )
        return TrainRequest(
            request_id=self.federation.new_request_id(),
            experiment_id=self.experiment_id,
            round_index=round_index,
            dataset_id=dataset.dataset_id,
            plan_blob=plan_blob,
            plan_digest=self._plan_digest,
            plan_class=self.training_plan.__name__,
            params_blob=params_blob,
            model_args=self.model_args,
            training_args=training_args,
            deadline_s=self.round_timeout_s,
            extra_blobs=extra_blobs,
        )

    def _fold(self, node_id: str, reply: object, scratch: Path, elapsed: float) -> NodeRound:
        if isinstance(reply, ErrorReply):
            log.warning("round %d: node %s failed: %s", self.round_index, node_id, reply.message)
            return NodeRound(
                node_id, "failed", error=reply.message, error_code=reply.code, duration_s=elapsed
            )
        if (
            not isinstance(reply, TrainReply)
            or reply.experiment_id != self.experiment_id
            or reply.round_index != self.round_index
        ):
            return NodeRound(
                node_id,
                "failed",
                error="unexpected reply",
                error_code="protocol",
                duration_s=elapsed,
            )
        path = scratch / f"{node_id}.safetensors"
        extras_paths: dict[str, Path] = {}
        try:
            self.federation.blobs.get_file(reply.params_blob, path)
            for name, blob_id in reply.extra_blobs.items():
                extras_paths[name] = self.federation.blobs.get_file(
                    blob_id, scratch / f"{node_id}-{name}.safetensors"
                )
            extras = {name: dict(open_params(p)) for name, p in extras_paths.items()}
            with open_params(path) as update:
                self.aggregator.add(
                    node_id, update, float(reply.sample_count), update.layout, extras
                )
        except (ValidationError, NotFound) as exc:
            log.warning("round %d: update of node %s refused: %s", self.round_index, node_id, exc)
            return NodeRound(
                node_id,
                "failed",
                error=str(exc),
                error_code=getattr(exc, "code", "invalid"),
                duration_s=elapsed,
            )
        finally:
            path.unlink(missing_ok=True)
            for p in extras_paths.values():
                p.unlink(missing_ok=True)
        return NodeRound(
            node_id,
            "ok",
            sample_count=reply.sample_count,
            metrics=dict(reply.metrics),
            timings=dict(reply.timings),
            duration_s=elapsed,
        )
