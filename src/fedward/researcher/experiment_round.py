"""One round of an experiment: its nodes drawn, asked, aggregated, recorded, checkpointed.

``rounds.RoundRunner`` sends the requests and folds the updates in; around it, this
module tells the observers, forwards the nodes' progress scalars, keeps the round's
journal (``round_journal``) and its resume rules, records the nodes that were offline,
and decides whether the round had enough updates. ``run_next_round`` (what
``Experiment.run_once`` does) wraps it: the node draw before, and after it the
aggregation, the privacy accounting, the history and the checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from fedward.core.messages import DatasetSummary, LogEvent, ScalarEvent, TrainRequest
from fedward.errors import FederationError, RoundNotResumable
from fedward.protocol.params_writer import ParamsFile
from fedward.researcher import experiment_state
from fedward.researcher.checkpoint import checkpoint_params
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.round_journal import RoundJournal, journal_path, remove_stale_journals
from fedward.researcher.rounds import RoundRunner
from fedward.researcher.selection import rng_from_state, rng_state
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


def run_next_round(experiment: Experiment) -> RoundRecord:
    """``Experiment.run_once``: draw the round's nodes (the selection RNG put back if the
    round fails, so a retry draws the same), run it, aggregate, account for privacy,
    record and checkpoint it, and tell the observers and ``on_round``."""
    round_index = experiment.round_index
    started = time.monotonic()
    observers = experiment.observer_set()
    datasets = experiment.nodes()
    journal = round_journal(experiment.checkpoint_dir(), round_index)
    if journal is not None:  # nodes are asked once the checkpoint before is complete
        journal.barrier = experiment.checkpoint_saver.wait
    if journal is not None and journal.start is not None:
        offline = set(journal.start.offline)  # as the round saw them when it began
    else:
        offline = set(experiment.federation.offline_nodes()) & set(datasets)
    candidates = [n for n in sorted(datasets) if n not in offline]
    rng_before = rng_state(experiment._rng)
    selected = (
        experiment.selection.select(candidates, round_index, experiment._rng) if candidates else []
    )
    try:
        if len(selected) < experiment.min_replies:
            raise FederationError(
                f"round {round_index + 1} can ask only {len(selected)} node(s), fewer than the "
                f"minimum of {experiment.min_replies} (offline: {sorted(offline) or 'none'})",
                hint="start the missing nodes or lower min_replies",
            )
        experiment.privacy.check_next_round(round_index, selected)
        record = run_round(experiment, datasets, selected, sorted(offline), started, journal)
    except RoundNotResumable:
        experiment._rng = rng_from_state(rng_before)
        raise
    except FederationError:
        # Failed as an uninterrupted run would have: a retry is a fresh round.
        experiment._rng = rng_from_state(rng_before)
        if journal is not None:
            journal.remove()
        raise
    except BaseException:
        experiment._rng = rng_from_state(rng_before)  # a retried round draws the same nodes
        raise
    experiment._global = experiment.aggregator.finish()
    experiment.privacy.account(record)
    experiment.history.append(record)
    experiment_state.save_round(experiment, journal)
    observers.round_finished(record)
    if experiment._on_round is not None:
        experiment._on_round(record)
    return record


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
