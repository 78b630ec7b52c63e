"""One round of an experiment, from the nodes it selected to the round's record.

``rounds.RoundRunner`` sends the requests and folds the updates in; around it, this
module tells the observers, forwards the nodes' progress scalars, keeps the round's
journal (``round_journal``) and its resume rules, records the nodes that were offline,
and decides whether the round had enough updates. ``Experiment.run_once`` owns what
happens before (the selection) and after (aggregation, checkpoint).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from fedward.core.messages import DatasetSummary, LogEvent, ScalarEvent, TrainRequest
from fedward.errors import FederationError
from fedward.protocol.params_writer import ParamsFile
from fedward.researcher.checkpoint import checkpoint_params
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.round_journal import RoundJournal, journal_path, remove_stale_journals
from fedward.researcher.rounds import RoundRunner
from fedward.researcher.train_requests import train_request

if TYPE_CHECKING:
    from fedward.researcher.experiment import Experiment


def round_journal(checkpoints: Path | None, round_index: int) -> RoundJournal | None:
    """The journal of round ``round_index`` next to the checkpoints (None without
    checkpoints: then a crash inside a round cannot be resumed)."""
    if checkpoints is None:
        return None
    remove_stale_journals(checkpoints, round_index)
    return RoundJournal.open(journal_path(checkpoints, round_index))


def run_round(
    experiment: Experiment,
    datasets: dict[str, DatasetSummary],
    selected: list[str],
    offline: list[str],
    started: float,
    journal: RoundJournal | None,
) -> RoundRecord:
    """Round ``experiment.round_index`` with the ``selected`` nodes; its record, or a
    ``FederationError`` when too few nodes delivered (``RoundNotResumable`` when a
    resumed round cannot end as the uninterrupted run would have)."""
    round_index = experiment.round_index
    federation, aggregator = experiment.federation, experiment.aggregator
    observers = experiment.observer_set()
    if journal is not None and journal.resumed:
        journal.check_reachable(selected, federation.offline_nodes())
    failed_before = journal.failed if journal is not None else set()
    observers.round_started(round_index, selected)
    global_params = experiment.global_params()
    codec = experiment.codec_rounds
    if codec is not None:  # the round runs on the model the nodes can reconstruct
        global_params = codec.round_params(global_params)
    plan_blob = experiment.plan_upload.blob_for(federation.blobs, selected)
    aggregator.begin_round(global_params, round_index, population=len(datasets))

    def build(node_id: str, params_blob: str) -> TrainRequest:
        dataset = datasets[node_id]
        request = train_request(experiment, node_id, dataset, round_index, plan_blob, params_blob)
        if codec is None:
            return request
        return msgspec.structs.replace(request, **codec.request_fields(node_id))

    def forward(node_id: str, event: ScalarEvent | LogEvent) -> None:
        if isinstance(event, ScalarEvent) and event.experiment_id == experiment.experiment_id:
            observers.scalar(node_id, event)

    federation.add_event_sink(forward)
    try:
        runner = experiment.privacy.runner(
            federation, aggregator, observers, experiment.round_timeout_s
        )
        if isinstance(runner, RoundRunner):
            if codec is not None:
                runner.upload_params = lambda params, nodes, puts: codec.upload(puts, params, nodes)
                runner.decode_update = codec.decode
            results = runner.run(
                experiment.experiment_id,
                round_index,
                selected,
                global_params,
                build,
                journal,
                offline,
                global_file=checkpointed_global(experiment),
            )
        else:  # a secure round keeps no journal: a crash inside it repeats it whole
            experiment.checkpoint_saver.wait()  # so the checkpoint before it is complete
            results = runner.run(
                experiment.experiment_id, round_index, selected, global_params, build
            )
    finally:
        federation.remove_event_sink(forward)
    if journal is not None and journal.resumed:
        journal.check_delivered(selected, results, failed_before)
    for node_id in offline:
        results[node_id] = NodeRound(node_id, "offline", error="offline when the round began")
        observers.node_changed(round_index, node_id, "offline")
    record = RoundRecord(
        round_index, dict(sorted(results.items())), duration_s=time.monotonic() - started
    )
    if len(record.succeeded) < experiment.min_replies:
        details = "; ".join(
            f"{r.node_id}: {r.status} {r.error}".strip()
            for r in record.nodes.values()
            if r.status != "ok"
        )
        raise FederationError(
            f"round {round_index + 1} got {len(record.succeeded)} update(s), "
            f"fewer than the minimum of {experiment.min_replies} ({details})"
        )
    return record


def checkpointed_global(experiment: Experiment) -> ParamsFile | None:
    """The last checkpoint's parameters file when it holds the current global parameters:
    the round uploads it as it is instead of serialising the parameters again."""
    staged = experiment.checkpoint_saver.global_file(len(experiment.history))
    if staged is not None:  # written by the last round; its checkpoint may still be finishing
        return staged
    saved = experiment.last_checkpoint
    if saved is None or saved.name != f"round-{len(experiment.history):04d}":
        return None
    return checkpoint_params(saved)
