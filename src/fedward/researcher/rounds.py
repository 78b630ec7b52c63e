"""One round of training: fan the requests out, fold the updates in, name who dropped out.

The global parameters are uploaded once, readable by the selected nodes only. Each
update is downloaded as soon as its node answers (up to ``DOWNLOAD_THREADS`` at once,
overlapping each other and the wait for the other nodes), checked against the global
model's layout, and folded into the aggregator **in node id order**: an update that
arrives before its predecessors waits on disk (never in memory), so the floating-point
sums, and hence the parameters, are the same whatever order the nodes answer in. That is
what lets a resumed experiment end bit for bit where an uninterrupted one would.

A node's reply is a claim from a peer the researcher does not control, so an update is
checked before it touches the aggregator: its sample count must be a plausible weight;
it is downloaded with a cap (the largest file the global model's layout allows), and
so are the extras the aggregator asked for (others are not downloaded at all); its
header must describe exactly the global layout; every value must be finite and within
``MAX_ABS_VALUE`` (``params_wire.open_update``). A refusal names the node and the reason
in its ``NodeRound`` and the round goes on without it.

Nodes that answer with an error, send an update that is refused, or go offline are
``failed``; nodes with no answer at the deadline are ``late``. Deciding whether the round
as a whole succeeded is the experiment's job.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fedward.core.aggregation import Layout, layout_of
from fedward.core.messages import ErrorReply, TrainReply, TrainRequest
from fedward.core.params import Params
from fedward.errors import IntegrityError, NotFound, ValidationError
from fedward.protocol.params_wire import (
    LazyParams,
    open_update,
    params_file_bound,
)
from fedward.protocol.params_writer import ParamsFile
from fedward.researcher.aggregators.base import Aggregator
from fedward.researcher.federation import Federation, NodeAnswer
from fedward.researcher.history import NodeRound, NodeStatus
from fedward.researcher.monitor import RoundObserver
from fedward.researcher.round_arrivals import Arrival, OrderedFold
from fedward.researcher.round_journal import RoundJournal, RoundStart
from fedward.researcher.round_scratch import fetch_once, round_scratch
from fedward.transport.upload_in_flight import StreamedPuts, UploadInFlight

log = logging.getLogger("fedward.researcher")

#: Builds a node's train request once the global parameters are uploaded (blob id given).
RequestBuilder = Callable[[str, str], TrainRequest]

#: The largest sample count taken as an aggregation weight: float64 holds every int up
#: to it exactly, and weights this large cannot overflow the sums (see MAX_ABS_VALUE).
MAX_SAMPLE_COUNT = 2**53
#: Updates downloaded at once: enough to overlap transfers with hashing and writing.
DOWNLOAD_THREADS = 4


class RoundRunner:
    def __init__(
        self,
        federation: Federation,
        aggregator: Aggregator,
        observer: RoundObserver,
        deadline_s: float,
    ) -> None:
        self.federation = federation
        self.aggregator = aggregator
        self.observer = observer
        self.deadline_s = deadline_s
        self._extras: dict[str, Layout] = {}  # the extras the aggregator asks for
        self._update_cap = 0  # download caps in bytes, from the layouts
        self._extra_caps: dict[str, int] = {}
        self._keep_updates = False  # a journaled round keeps its downloads (``round_scratch``)
        # Update codecs (``update_codecs.CodecRounds``) replace these two steps: how the
        # round's model is uploaded (its id goes to the journal and the requests), and
        # how an update file becomes the full parameters the aggregator folds.
        self.upload_params: Callable[[Params, list[str], StreamedPuts], str] | None = None
        self.decode_update: Callable[[str, Path], Params] | None = None

    def run(
        self,
        experiment_id: str,
        round_index: int,
        selected: Sequence[str],
        global_params: Params,
        build_request: RequestBuilder,
        journal: RoundJournal | None = None,
        offline: Sequence[str] = (),
        global_file: ParamsFile | None = None,
    ) -> dict[str, NodeRound]:
        """The round's outcome per selected node. With a ``journal``, every answer and
        every late verdict is recorded before it is acted on; a journal found on disk
        (a resumed round) gives back the answers it holds, and only the other nodes are
        asked again (their repeated requests re-attach to the jobs they started).
        ``global_file``: the global parameters already written (the last checkpoint's),
        uploaded as they are while unchanged."""
        started = time.monotonic()
        self._keep_updates = journal is not None  # kept until the checkpoint: round_scratch
        with round_scratch(journal) as scratch, contextlib.ExitStack() as self._uploads:
            return self._run(
                experiment_id,
                round_index,
                selected,
                global_params,
                build_request,
                journal,
                offline,
                global_file,
                Path(scratch),
                started,
            )

    def _upload_global(
        self, params: Params, readers: list[str], written: ParamsFile | None, scratch: Path
    ) -> str:
        if written is None or not written.unchanged():
            written = ParamsFile.write(params, scratch / "global.safetensors", durable=False)
        upload = UploadInFlight(self.federation.blobs, written.path, readers, written.sha256)
        return self._uploads.enter_context(upload).blob_id  # registered: nodes may GET it

    def _run(
        self,
        experiment_id: str,
        round_index: int,
        selected: Sequence[str],
        global_params: Params,
        build_request: RequestBuilder,
        journal: RoundJournal | None,
        offline: Sequence[str],
        global_file: ParamsFile | None,
        scratch: Path,
        started: float,
    ) -> dict[str, NodeRound]:
        if self.upload_params is not None:  # an update codec uploads what it sends
            puts = StreamedPuts(self.federation.blobs, scratch, self._uploads)
            params_blob = self.upload_params(global_params, list(selected), puts)
        else:
            params_blob = self._upload_global(global_params, list(selected), global_file, scratch)
        settled = journal.settled if journal is not None else set()
        to_ask = [n for n in selected if n not in settled]
        requests = {node_id: build_request(node_id, params_blob) for node_id in to_ask}
        if journal is not None:
            journal.begin(RoundStart(round_index, tuple(selected), tuple(offline), params_blob))
        for node_id in selected:
            self.observer.node_changed(round_index, node_id, "training")
        expected = layout_of(global_params)
        self._extras = self.aggregator.expected_extras()
        self._update_cap = params_file_bound(expected)
        self._extra_caps = {name: params_file_bound(lay) for name, lay in self._extras.items()}
        results: dict[str, NodeRound] = {}
        answered: set[str] = set()
        fold = OrderedFold(sorted(selected))
        # On a resumed round, what a node said before the crash is final; only answers
        # that succeed are worth recording then (a failure now fails the round loudly).
        keep_failures = journal is None or not journal.resumed
        known = [NodeAnswer(*item) for item in sorted((journal.answers if journal else {}).items())]
        # Downloads run on threads; their ends come back through the answers' inbox, so
        # this thread folds every update (and calls the observer) as soon as it is in.
        events: queue.Queue[NodeAnswer | Fetched] = queue.Queue()
        in_flight = 0

        def resolve(node_id: str, arrival: Arrival | None) -> None:
            for ready in fold.resolve(node_id, arrival):
                results[ready.node_id] = self._fold(round_index, ready, expected)

        def settle(event: Fetched) -> None:
            nonlocal in_flight
            in_flight -= 1
            arrival = self._settled(round_index, event.announced, event.download, results)
            resolve(event.announced.node_id, arrival)

        with ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="fedward-fetch") as pool:
            asked = self.federation.ask_interleaved(requests, self.deadline_s, events)
            for event in itertools.chain(known, asked):
                if isinstance(event, Fetched):
                    settle(event)
                    continue
                node_id, reply = event.node_id, event.reply
                elapsed = time.monotonic() - started
                answered.add(node_id)
                if journal is not None and node_id not in journal.answers:
                    _record(journal, node_id, reply, keep_failures)
                arrival = self._accepted(
                    experiment_id, round_index, node_id, reply, scratch, elapsed, results
                )
                if arrival is None:
                    resolve(node_id, None)
                    continue
                # Downloads overlap each other and the wait for the other nodes.
                download = pool.submit(self._download, arrival)
                in_flight += 1
                download.add_done_callback(functools.partial(_announce, events, arrival))
            while in_flight:  # every node answered (or the deadline passed): the last ones
                event = events.get()
                if isinstance(event, Fetched):
                    settle(event)
            for node_id in sorted(set(selected) - answered):
                if journal is not None and keep_failures and node_id not in journal.late:
                    journal.record_late(node_id)
                results[node_id] = NodeRound(
                    node_id, "late", error=f"no reply within {self.deadline_s:g} s"
                )
                log.warning(
                    "round %d: node %s did not answer in time; dropped from this round",
                    round_index,
                    node_id,
                )
                self.observer.node_changed(round_index, node_id, "late")
                # A late node gives its turn up: updates held behind it are folded now.
                resolve(node_id, None)
        return results

    def _accepted(
        self,
        experiment_id: str,
        round_index: int,
        node_id: str,
        reply: object,
        scratch: Path,
        elapsed: float,
        results: dict[str, NodeRound],
    ) -> Arrival | None:
        """The update an answer announces, to download; None (the node recorded as
        failed) for an error, a reply to something else or an implausible weight."""
        if isinstance(reply, ErrorReply):
            self._failed(
                round_index,
                node_id,
                results,
                describe_error(reply),
                reply.code,
                elapsed,
                reply.job_id,
            )
            return None
        if (
            not isinstance(reply, TrainReply)
            or reply.experiment_id != experiment_id
            or reply.round_index != round_index
        ):
            self._failed(round_index, node_id, results, "unexpected reply", "protocol", elapsed)
            return None
        if not 1 <= reply.sample_count <= MAX_SAMPLE_COUNT:
            shown = str(reply.sample_count) if reply.sample_count < 10**30 else "a huge number of"
            message = f"{node_id} claims {shown} training samples"
            self._failed(round_index, node_id, results, message, ValidationError.code, elapsed)
            return None
        ignored = sorted(set(reply.extra_blobs) - set(self._extras))
        if ignored:
            log.info("round %d: ignoring extras %s from node %s", round_index, ignored[:5], node_id)
        return Arrival(node_id, reply, scratch / f"{node_id}.safetensors", elapsed_s=elapsed)

    def _download(self, arrival: Arrival) -> Arrival:
        """Fetch an update and the extras the aggregator reads, each with its cap."""
        reply, scratch = arrival.reply, arrival.params_path.parent
        try:
            fetch = functools.partial(fetch_once, self.federation.blobs, reuse=self._keep_updates)
            fetch(reply.params_blob, arrival.params_path, self._update_cap)
            for name in sorted(set(reply.extra_blobs) & set(self._extras)):
                path = scratch / f"{arrival.node_id}-{name}.safetensors"
                fetch(reply.extra_blobs[name], path, self._extra_caps[name])
                arrival.extras_paths[name] = path
        except BaseException:
            arrival.discard()
            raise
        return arrival

    def _settled(
        self,
        round_index: int,
        announced: Arrival,
        download: Future[Arrival],
        results: dict[str, NodeRound],
    ) -> Arrival | None:
        """A finished download's arrival; None (the node recorded as failed) if the
        update could not be fetched as announced."""
        node_id = announced.node_id
        try:
            arrival = download.result()
        except (NotFound, IntegrityError, ValidationError) as exc:
            self._failed(
                round_index,
                node_id,
                results,
                f"the update of {node_id} could not be downloaded: {exc}",
                exc.code,
                announced.elapsed_s,
                announced.reply.job_id,
            )
            return None
        self.observer.node_changed(round_index, node_id, "done")
        return arrival

    def _failed(
        self,
        round_index: int,
        node_id: str,
        results: dict[str, NodeRound],
        error: str,
        code: str,
        elapsed: float = 0.0,
        job_id: str = "",
    ) -> None:
        log.warning("round %d: node %s failed: %s", round_index, node_id, error)
        results[node_id] = NodeRound(
            node_id, "failed", error=error, error_code=code, duration_s=elapsed, job_id=job_id
        )
        self.observer.node_changed(round_index, node_id, "failed")

    def _fold(self, round_index: int, arrival: Arrival, expected: Layout) -> NodeRound:
        node_id, reply = arrival.node_id, arrival.reply
        status: NodeStatus = "ok"
        error, code = "", ""
        try:
            with contextlib.ExitStack() as opened:
                extras: dict[str, LazyParams] = {
                    name: opened.enter_context(
                        open_update(path, self._extras[name], what=f"extra {name!r} tensor")
                    )
                    for name, path in arrival.extras_paths.items()
                }
                weight = float(reply.sample_count)
                if self.decode_update is not None:  # checked as it is decoded
                    decoded = self.decode_update(node_id, arrival.params_path)
                    self.aggregator.add(node_id, decoded, weight, expected, extras)
                else:
                    update = opened.enter_context(open_update(arrival.params_path, expected))
                    self.aggregator.add(node_id, update, weight, update.layout, extras)
        except ValidationError as exc:
            log.warning("round %d: update of node %s refused: %s", round_index, node_id, exc)
            status, error, code = (
                "failed",
                f"{node_id} sent an update that was refused: {exc}",
                exc.code,
            )
        finally:
            if not self._keep_updates:  # else kept for a resume (``round_scratch``)
                arrival.discard()
        self.observer.node_changed(round_index, node_id, status)
        if status != "ok":
            return NodeRound(
                node_id,
                status,
                error=error,
                error_code=code,
                duration_s=arrival.elapsed_s,
                job_id=reply.job_id,
            )
        return NodeRound(
            node_id,
            "ok",
            sample_count=reply.sample_count,
            metrics=dict(reply.metrics),
            timings=dict(reply.timings),
            duration_s=arrival.elapsed_s,
            job_id=reply.job_id,
            threads=reply.threads,
        )


@dataclass(frozen=True)
class Fetched:
    """A download thread's news: the update ``announced`` is fetched (or failed)."""

    announced: Arrival
    download: Future[Arrival]


def _announce(
    events: queue.Queue[NodeAnswer | Fetched], announced: Arrival, download: Future[Arrival]
) -> None:
    events.put(Fetched(announced, download))


def _record(journal: RoundJournal, node_id: str, reply: object, keep_failures: bool) -> None:
    if isinstance(reply, TrainReply) or (keep_failures and isinstance(reply, ErrorReply)):
        journal.record_answer(node_id, reply)


def describe_error(reply: ErrorReply) -> str:
    """A node's error as the researcher reads it: the message, the node's job id (what
    ``fedward node jobs`` shows there), and the plan's own lines where it failed (numbered
    as in ``normalise_source`` of the plan's source)."""
    # Continuation lines are indented, so that a message cannot pass for a log record of
    # its own (the protocol already refuses every control character but line breaks).
    text = "\n      ".join(reply.message.splitlines()) if reply.message else ""
    if reply.job_id:
        text += f" [job {reply.job_id}]"
    for line in reply.plan_lines:
        text += f"\n    plan line {line.line}, in {line.function}: {line.text}"
    return text
