"""The node daemon end to end in one process: in-memory broker and blob store, real SQLite,
real job workers, the researcher's real ``Experiment``.

What the node decides (approval, GPU policy) must reach the job; a GPU machine also runs
a torch plan on CUDA.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest

from fedward.config.model import GpuPolicy, NodeConfig
from fedward.core.messages import ErrorReply, Reply, TrainReply, TrainRequest
from fedward.core.plan_digest import plan_digest
from fedward.errors import FederationError
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source
from fedward.learning.plans.torch_mlp import TorchMLPPlan
from fedward.node.daemon import NodeDaemon
from fedward.node.gpu import DeviceProbe, cuda_device_count
from fedward.node.services import NodeServices, open_node_services_for
from fedward.node.wiring import build_node_daemon
from fedward.protocol.params_wire import params_to_bytes
from fedward.researcher import Experiment
from fedward.researcher.federation import Federation
from fedward.storage.node_records import JobRecord
from fedward.transport.channel import Channel, Will
from fedward.transport.memory import MemoryBlobStore, MemoryBroker
from tests.node_job_plans import probes
from tests.waiting import wait_for

NODE = "hospital-a"
RESEARCHER = "researcher-1"
TAGS = ["daemon-test"]


@dataclass
class Site:
    """One node daemon and one researcher on an in-memory broker."""

    daemon: NodeDaemon
    services: NodeServices
    federation: Federation

    def experiment(self, plan: type[TrainingPlan], **kwargs: object) -> Experiment:
        return Experiment(
            tags=TAGS,
            training_plan=plan,
            federation=self.federation,
            round_timeout_s=60,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def start_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def start(
        *, approval: bool = True, gpu: GpuPolicy | None = None, probe: DeviceProbe | None = None
    ) -> Site:
        table = tmp_path / "table.csv"
        rng = np.random.default_rng(0)
        features = rng.normal(size=(40, 3))
        rows = [f"{a:.4f},{b:.4f},{c:.4f},{int(a + b > 0)}" for a, b, c in features]
        table.write_text("x1,x2,x3,label\n" + "\n".join(rows) + "\n")
        config = NodeConfig(
            node_id=NODE,
            state_dir=tmp_path / "state",
            approval_required=approval,
            gpu=gpu or GpuPolicy(),
        )
        services = open_node_services_for(config)
        if not services.datasets.list():
            services.datasets.add("csv", table, "table", TAGS)
        broker, blobs = MemoryBroker(), MemoryBlobStore()

        def channel_factory(client_id: str, will: Will) -> Channel:
            return broker.connect(client_id, will)

        daemon = build_node_daemon(
            config,
            channel_factory=channel_factory,
            blobs=blobs.as_peer(NODE),
            services=services,
            device_probe=probe or cuda_device_count,
        )
        daemon.start(presence_wait_s=0.05)
        federation = Federation(RESEARCHER, broker.connect("researcher"), blobs.as_peer(RESEARCHER))
        site = Site(daemon, services, federation)
        sites.append(site)
        return site

    yield start
    for site in sites:
        site.daemon.stop()
        site.services.close()


def ended_job(site: Site) -> JobRecord:
    """The site's one job, once it has ended: the reply goes out while the update is
    still uploading (``update_uploads``), and the job log records the end after that."""
    wait_for(
        lambda: [job.outcome for job in site.services.jobs.list()] not in ([], ["running"]),
        "the job's end in the job log",
    )
    (job,) = site.services.jobs.list()
    return job


def two_gpus() -> int:
    return 2


@pytest.mark.parametrize(
    ("policy", "asked", "expected_index"),
    [
        (GpuPolicy("off"), True, -1),
        (GpuPolicy("allowed"), False, -1),
        (GpuPolicy("allowed", device_index=1), True, 1),
        (GpuPolicy("only"), False, 0),
    ],
)
def test_the_gpu_policy_decides_the_device_the_plan_gets(
    start_site: Callable[..., Site], policy: GpuPolicy, asked: bool, expected_index: int
) -> None:
    site = start_site(approval=False, gpu=policy, probe=two_gpus)
    record = site.experiment(probes.DevicePlan, training_args={"use_gpu": asked}).run_once()
    assert record.nodes[NODE].metrics["cuda_index"] == expected_index


def test_a_plan_that_is_not_approved_is_refused_and_the_refusal_audited(
    start_site: Callable[..., Site],
) -> None:
    site = start_site()
    experiment = site.experiment(probes.PidPlan)
    assert experiment.plan_status() == {NODE: "unknown"}
    with pytest.raises(FederationError, match="training plan is unknown on this node"):
        experiment.run_once()
    (refusal,) = site.services.audit.list_events(kind="train_refused")
    assert refusal.actor == RESEARCHER and refusal.subject == experiment.plan_digest
    assert site.services.jobs.list() == []


def test_a_pending_plan_is_refused_until_approved(start_site: Callable[..., Site]) -> None:
    site = start_site()
    experiment = site.experiment(probes.PidPlan)
    assert experiment.request_approval("reports its pid") == {NODE: "pending"}
    with pytest.raises(FederationError, match="has not reviewed it yet"):
        experiment.run_once()
    record = site.services.plans.find_by_digest(experiment.plan_digest)
    assert record is not None and record.researcher_id == RESEARCHER
    site.services.plans.approve(record.plan_id, "alice")
    assert experiment.run_once().succeeded == [NODE]
    job = ended_job(site)
    assert (job.outcome, job.plan_digest, job.researcher_id) == (
        "succeeded",
        experiment.plan_digest,
        RESEARCHER,
    )


def test_with_approval_off_any_plan_runs_and_is_logged(
    start_site: Callable[..., Site], caplog: pytest.LogCaptureFixture
) -> None:
    site = start_site(approval=False)
    with caplog.at_level(logging.WARNING, logger="fedward.node"):
        record = site.experiment(probes.PidPlan).run_once()
    assert record.succeeded == [NODE]
    assert "approval is disabled" in caplog.text
    assert ended_job(site).outcome == "succeeded"


def test_a_failed_job_is_reported_with_its_code_and_logged(
    start_site: Callable[..., Site],
) -> None:
    site = start_site(approval=False)
    experiment = site.experiment(probes.PidPlan, training_args={"fail": True})
    with pytest.raises(FederationError) as failed:
        experiment.run_once()
    (job,) = site.services.jobs.list()
    assert job.outcome == "failed" and "ValueError: asked to fail" in job.message
    # What the researcher reads: the plan's words, the node's job id, the plan's own line.
    shown = str(failed.value)
    assert f"training plan raised ValueError: asked to fail [job {job.job_id}]" in shown
    assert "plan line " in shown and "in train: raise ValueError('asked to fail')" in shown


def _train_request(site: Site, round_index: int, **training_args: object) -> TrainRequest:
    """A round's request for ``NapPlan``, as an experiment that resumed would send it."""
    federation = site.federation
    readers = [NODE]
    source = plan_source(probes.NapPlan)
    (dataset,) = federation.search(TAGS)[NODE]
    return TrainRequest(
        request_id=federation.new_request_id(),
        experiment_id="exp-repeat",
        round_index=round_index,
        dataset_id=dataset.dataset_id,
        plan_blob=federation.blobs.put_bytes(source.encode(), readers=readers),
        plan_digest=plan_digest(source),
        plan_class="NapPlan",
        params_blob=federation.blobs.put_bytes(
            params_to_bytes({"w": np.zeros(2)}), readers=readers
        ),
        training_args=dict(training_args),
        deadline_s=30.0,
    )


def _ask_in_background(site: Site, request: TrainRequest) -> queue.Queue[Reply]:
    replies: queue.Queue[Reply] = queue.Queue()

    def ask() -> None:
        for answer in site.federation.ask({NODE: request}, 40.0):
            replies.put(answer.reply)

    threading.Thread(target=ask, daemon=True).start()
    return replies


def test_a_repeated_train_request_reattaches_to_its_running_job_and_replays_it_after(
    start_site: Callable[..., Site],
) -> None:
    site = start_site(approval=False)
    first = _train_request(site, 0, nap_s=1.5)
    first_replies = _ask_in_background(site, first)
    time.sleep(0.5)  # the job is running
    repeat = msgspec.structs.replace(first, request_id=site.federation.new_request_id())
    repeat_replies = _ask_in_background(site, repeat)
    original, reattached = first_replies.get(timeout=30), repeat_replies.get(timeout=30)
    assert isinstance(original, TrainReply) and isinstance(reattached, TrainReply)
    assert reattached.request_id == repeat.request_id
    assert (reattached.params_blob, reattached.job_id) == (original.params_blob, original.job_id)
    # After the job ended, a third copy gets the same outcome again: still one job.
    late = msgspec.structs.replace(first, request_id=site.federation.new_request_id())
    replayed = _ask_in_background(site, late).get(timeout=30)
    assert isinstance(replayed, TrainReply) and replayed.job_id == original.job_id
    job = ended_job(site)
    assert job.job_id == original.job_id and job.outcome == "succeeded"


def test_a_round_running_from_other_inputs_is_refused_and_a_finished_one_runs_anew(
    start_site: Callable[..., Site],
) -> None:
    site = start_site(approval=False)
    running = _ask_in_background(site, _train_request(site, 0, nap_s=1.5))
    time.sleep(0.5)
    other = _ask_in_background(site, _train_request(site, 0, nap_s=0.1)).get(timeout=30)
    assert isinstance(other, ErrorReply) and other.code == "conflict", other
    assert "other inputs" in other.message
    assert isinstance(running.get(timeout=30), TrainReply)
    again = _ask_in_background(site, _train_request(site, 0, nap_s=0.1)).get(timeout=30)
    assert isinstance(again, TrainReply)
    assert len(site.services.jobs.list()) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not Path("/dev/nvidia0").exists(), reason="needs an NVIDIA GPU")
def test_a_torch_plan_trains_on_cuda_when_the_policy_allows_it(
    start_site: Callable[..., Site], caplog: pytest.LogCaptureFixture
) -> None:
    site = start_site(gpu=GpuPolicy("allowed"))  # the real probe; default plans approved
    with caplog.at_level(logging.INFO, logger="fedward.jobs"):
        record = site.experiment(
            TorchMLPPlan,
            model_args={"n_features": 3, "classes": [0, 1]},
            training_args={"use_gpu": True, "epochs": 1, "batch_size": 8},
        ).run_once()
    assert record.succeeded == [NODE]
    assert "(cuda:0)" in caplog.text
