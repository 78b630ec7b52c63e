"""fedward's round overhead on a real federation on loopback.

The federation is ``fedward.demo.local_federation.LocalFederation``: Mosquitto with
passwords and the ACL, the upload server process, and one ``fedward node start``
process per node, each with its own SQLite state and warm job worker. The researcher is
this process, through ``Experiment.run_once``, exactly as a user runs it.

Round overhead = the round's wall time (around ``run_once``, aggregation included) minus
the slowest node's local compute (the plan's ``train`` step, reported by the node's
worker as ``train_s``). Everything else - serialising, hashing, uploading, MQTT, the
node's checks, starting the job, loading and saving parameters, downloading and folding
the updates - is the platform's cost.

The first round of each cell is a warm-up (the node starts a job worker for the new
experiment) and is reported apart, not in the statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.noop_plan import NoOpPlan
from benchmarks.stats import summary
from fedward.demo.local_federation import LocalFederation
from fedward.researcher import Experiment, FedAvg, experiment_state
from fedward.transport.blobs import BlobStore

TAGS = ["fedward-bench"]
#: Blobs bigger than this are parameters, deleted from the upload server between rounds.
_PARAMS_BLOB_MIN_BYTES = 1 << 20


def node_names(count: int) -> list[str]:
    return [f"node{index:02d}" for index in range(1, count + 1)]


@contextmanager
def bench_federation(workdir: Path, node_count: int) -> Iterator[LocalFederation]:
    """A started federation of ``node_count`` nodes, each with a tiny CSV tagged TAGS.

    Plan approval is off on these nodes (the node logs a warning per job): approving
    the benchmark's plan by hand would only add steps outside the timed rounds.
    """
    node_ids = node_names(node_count)
    fed = LocalFederation(workdir, node_ids=node_ids, approval_required=False)
    try:
        fed.start()
        data = workdir / "bench.csv"
        data.write_text("x,y\n0.5,0\n1.5,1\n2.5,0\n")
        for node_id in node_ids:
            fed.add_dataset(node_id, data_type="csv", path=data, name="bench", tags=TAGS)
        fed.start_nodes(timeout_s=60.0 + 3.0 * node_count)
        yield fed
    finally:
        fed.stop()


class TimedBlobStore:
    """A ``BlobStore`` that adds up the time the researcher spends in each call."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.upload_s = 0.0
        self.download_s = 0.0

    def reset(self) -> None:
        self.upload_s = self.download_s = 0.0

    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str:
        started = time.perf_counter()
        try:
            return self.inner.put_bytes(data, readers)
        finally:
            self.upload_s += time.perf_counter() - started

    def put_file(
        self,
        path: Path,
        readers: Sequence[str],
        *,
        blob_id: str | None = None,
        on_accepted: Callable[[], object] | None = None,
    ) -> str:
        started = time.perf_counter()
        try:
            return self.inner.put_file(path, readers, blob_id=blob_id, on_accepted=on_accepted)
        finally:
            self.upload_s += time.perf_counter() - started

    def get_bytes(self, blob_id: str, *, max_bytes: int | None = None) -> bytes:
        started = time.perf_counter()
        try:
            return self.inner.get_bytes(blob_id, max_bytes=max_bytes)
        finally:
            self.download_s += time.perf_counter() - started

    def get_file(
        self, blob_id: str, dest: Path, *, max_bytes: int | None = None, durable: bool = True
    ) -> Path:
        started = time.perf_counter()
        try:
            return self.inner.get_file(blob_id, dest, max_bytes=max_bytes, durable=durable)
        finally:
            self.download_s += time.perf_counter() - started

    def confirm_kept(self, blob_id: str) -> None:
        self.inner.confirm_kept(blob_id)

    def offer_again(self, blob_id: str) -> bool:
        return self.inner.offer_again(blob_id)


@dataclass
class RoundSample:
    wall_s: float
    compute_s: float  # the slowest node's train_s
    node_load_s: float  # the slowest node's parameter loading (worker, from disk)
    node_save_s: float
    researcher_upload_s: float  # serialise excluded: put_bytes of the global parameters
    researcher_download_s: float  # every update, one after the other
    checkpoint_s: float  # the researcher's checkpoint of the round (on by default)
    replies: int

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.compute_s


@dataclass
class CellResult:
    num_params: int
    nodes: int
    warmup: RoundSample
    rounds: list[RoundSample] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "num_params": self.num_params,
            "nodes": self.nodes,
            "model_bytes": self.num_params * 4,
            "overhead_s": summary([r.overhead_s for r in self.rounds]),
            "wall_s": summary([r.wall_s for r in self.rounds]),
            "compute_s": summary([r.compute_s for r in self.rounds]),
            "warmup_wall_s": self.warmup.wall_s,
            "rounds": [_sample_json(r) for r in self.rounds],
        }


def _sample_json(sample: RoundSample) -> dict[str, float]:
    return {
        "wall_s": sample.wall_s,
        "overhead_s": sample.overhead_s,
        "compute_s": sample.compute_s,
        "node_load_s": sample.node_load_s,
        "node_save_s": sample.node_save_s,
        "researcher_upload_s": sample.researcher_upload_s,
        "researcher_download_s": sample.researcher_download_s,
        "checkpoint_s": sample.checkpoint_s,
        "replies": sample.replies,
    }


def measure_cell(
    fed: LocalFederation,
    node_ids: Sequence[str],
    num_params: int,
    rounds: int,
    round_timeout_s: float = 600.0,
    around_round: Callable[[int, bool], None] | None = None,
) -> CellResult:
    """One warm-up round, then ``rounds`` timed rounds of ``NoOpPlan`` on ``node_ids``.

    ``around_round(index, started)`` is called just before (``True``) and just after
    (``False``) each round's clock, for probes that watch the processes.
    """
    federation = fed.researcher()
    timed = TimedBlobStore(federation.blobs)
    federation.blobs = timed
    try:
        with _timed_checkpoints() as checkpoint_s:
            experiment = Experiment(
                tags=TAGS,
                training_plan=NoOpPlan,
                model_args={"num_params": num_params},
                rounds=rounds + 1,
                aggregator=FedAvg(),
                nodes=list(node_ids),
                round_timeout_s=round_timeout_s,
                min_replies=len(node_ids),
                federation=federation,
                progress=False,
                keep_checkpoints=2,  # checkpoints stay on, as by default; only two kept on disk
            )
            if sorted(experiment.nodes()) != sorted(node_ids):  # the search, outside the clock
                raise RuntimeError(f"expected nodes {sorted(node_ids)}, found {experiment.nodes()}")
            samples: list[RoundSample] = []
            for _ in range(rounds + 1):
                timed.reset()
                checkpoint_s[0] = 0.0
                if around_round is not None:
                    around_round(len(samples), True)
                started = time.perf_counter()
                record = experiment.run_once()
                wall_s = time.perf_counter() - started
                if around_round is not None:
                    around_round(len(samples), False)
                ok = [record.nodes[n] for n in record.succeeded]
                samples.append(
                    RoundSample(
                        wall_s=wall_s,
                        compute_s=max(r.timings.get("train_s", 0.0) for r in ok),
                        node_load_s=max(r.timings.get("load_s", 0.0) for r in ok),
                        node_save_s=max(r.timings.get("save_s", 0.0) for r in ok),
                        researcher_upload_s=timed.upload_s,
                        researcher_download_s=timed.download_s,
                        checkpoint_s=checkpoint_s[0],
                        replies=len(ok),
                    )
                )
                remove_parameter_blobs(fed)
    finally:
        federation.blobs = timed.inner
    return CellResult(num_params, len(node_ids), samples[0], samples[1:])


@contextmanager
def _timed_checkpoints() -> Iterator[list[float]]:
    """Time the end-of-round checkpoint by wrapping ``experiment_state.save_round`` while
    the block runs (benchmark-only instrumentation; fedward's code is unchanged). What it
    times is the part on the round's path: writing the parameters; the rest of the
    checkpoint is finished on a thread beside the next round (``checkpoint_saver``)."""
    spent = [0.0]
    save = experiment_state.save_round

    def timed_save(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            save(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    experiment_state.save_round = timed_save
    try:
        yield spent
    finally:
        experiment_state.save_round = save


def remove_parameter_blobs(fed: LocalFederation) -> None:
    """Delete the round's parameter files from the upload server's store (between rounds,
    outside the clock): 100M x 10 nodes writes 4.4 GB per round, which would otherwise
    pile up on disk for the whole run. The upload server has no delete route for peers,
    so the harness removes the files it knows are finished with."""
    objects = fed.workdir / "uploads" / "data" / "objects"
    for path in objects.glob("*/*"):
        try:
            if path.stat().st_size >= _PARAMS_BLOB_MIN_BYTES:
                path.unlink()
        except FileNotFoundError:
            pass
