"""What an experiment sends a node for one round: its plan, uploaded once per set of
readers, and the ``TrainRequest`` (training arguments with the seed and the
aggregator's own, extra tensors some aggregators send, the round's deadline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedward.core.messages import DatasetSummary, TrainRequest
from fedward.protocol.params_wire import params_to_bytes
from fedward.transport.blobs import BlobStore

if TYPE_CHECKING:
    from fedward.researcher.experiment import Experiment


class PlanUpload:
    """The plan's source on the upload server, readable by the nodes that train it."""

    def __init__(self, source: str) -> None:
        self._data = source.encode("utf-8")
        self._blob: str | None = None
        self._readers: set[str] = set()

    def blob_for(self, blobs: BlobStore, readers: list[str]) -> str:
        # Upload once per new reader set: re-uploading the same content only extends its
        # readers, so a round whose nodes all read the plan already skips the request.
        if self._blob is not None and set(readers) <= self._readers:
            return self._blob
        self._readers |= set(readers)
        self._blob = blobs.put_bytes(self._data, readers=sorted(self._readers))
        return self._blob


def node_training_args(experiment: Experiment, node_id: str) -> dict[str, object]:
    """The training arguments node ``node_id`` gets: the seed, the researcher's, the
    aggregator's."""
    return {
        "seed": experiment.seed,
        **experiment.training_args,
        **experiment.aggregator.training_args_for_node(node_id),
    }


def train_request(
    experiment: Experiment,
    node_id: str,
    dataset: DatasetSummary,
    round_index: int,
    plan_blob: str,
    params_blob: str,
) -> TrainRequest:
    federation = experiment.federation
    extra_blobs: dict[str, str] = {}
    for name, tensors in experiment.aggregator.extras_for_node(node_id).items():
        extra_blobs[name] = federation.blobs.put_bytes(params_to_bytes(tensors), readers=[node_id])
    return TrainRequest(
        request_id=federation.new_request_id(),
        experiment_id=experiment.experiment_id,
        round_index=round_index,
        dataset_id=dataset.dataset_id,
        plan_blob=plan_blob,
        plan_digest=experiment.plan_digest,
        plan_class=experiment.training_plan.__name__,
        params_blob=params_blob,
        model_args=experiment.model_args,
        training_args=node_training_args(experiment, node_id),
        deadline_s=experiment.round_timeout_s,
        extra_blobs=extra_blobs,
        **experiment.privacy.request_fields(),  # type: ignore[arg-type]
    )
