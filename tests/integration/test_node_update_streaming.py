"""A node's reply goes out while its update is still uploading (``node.update_uploads``).

Through the real upload server on loopback, the node's connection to it passing through
the chaos proxy (slowed, then cut), a real node daemon with real job workers and SQLite,
on an in-memory broker. What must hold: the researcher can stream the update from the
moment it reads the reply; the job counts as succeeded only once the upload is stored;
an upload that fails after the reply fails the job, a copy of the same request hears
that, and a repeated request (a resumed researcher) trains again. A repeat of a job
that succeeded is answered from it only while its update is still on the server.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest

from fedward.config.model import NodeConfig
from fedward.core.messages import ErrorReply, Reply, TrainReply, TrainRequest
from fedward.core.plan_digest import plan_digest
from fedward.learning.plan_source import plan_source
from fedward.node.daemon import NodeDaemon
from fedward.node.services import NodeServices, open_node_services_for
from fedward.node.wiring import build_node_daemon
from fedward.protocol.params_wire import params_from_bytes, params_to_bytes
from fedward.researcher.federation import Federation
from fedward.storage.node_records import JobRecord
from fedward.transport.channel import Channel, Will
from fedward.transport.http_blobs import HttpBlobStore
from fedward.transport.memory import MemoryBroker
from fedward.uploads.retention import RetentionPolicy, collect
from fedward.uploads.server import UploadServer
from fedward.uploads.tokens import set_token
from tests.chaos.proxy import ChaosProxy
from tests.node_job_plans import probes
from tests.waiting import LOADED_MACHINE_S, wait_for

NODE = "hospital-a"
RESEARCHER = "researcher-1"
TOKENS = {NODE: "node-token-0123456789ab", RESEARCHER: "researcher-token-012345"}
TAGS = ["streaming-test"]
PARAMS = {"w": np.zeros(500_000)}  # 4 MB: at the proxy's pace, an upload of ~2 s
PARAMS_BYTES = params_to_bytes(PARAMS)  # once: safetensors' header order varies
UPLOAD_BYTES_PER_S = 2e6


@dataclass
class Site:
    daemon: NodeDaemon
    services: NodeServices
    federation: Federation
    proxy: ChaosProxy
    uploads: UploadServer

    def jobs(self) -> list[JobRecord]:
        return self.services.jobs.list()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    tokens = tmp_path / "tokens.json"
    for peer, token in TOKENS.items():
        set_token(tokens, peer, token)
    table = tmp_path / "table.csv"
    table.write_text("x,label\n0.5,0\n1.5,1\n2.5,0\n")
    config = NodeConfig(node_id=NODE, state_dir=tmp_path / "state", approval_required=False)
    services = open_node_services_for(config)
    services.datasets.add("csv", table, "table", TAGS)
    broker = MemoryBroker()

    def channel_factory(client_id: str, will: Will) -> Channel:
        return broker.connect(client_id, will)

    with UploadServer(tmp_path / "uploads", tokens, max_blob_bytes=64 << 20) as server:
        proxy = ChaosProxy("127.0.0.1", int(server.url.rsplit(":", 1)[1])).start()
        # No retries for the node: one cut of its upload is a failed upload.
        node_blobs = HttpBlobStore(f"http://127.0.0.1:{proxy.port}", TOKENS[NODE], retry_s=0)
        daemon = build_node_daemon(
            config, channel_factory=channel_factory, blobs=node_blobs, services=services
        )
        daemon.start(presence_wait_s=0.05)
        researcher_blobs = HttpBlobStore(server.url, TOKENS[RESEARCHER], retry_s=0)
        federation = Federation(RESEARCHER, broker.connect("researcher"), researcher_blobs)
        try:
            yield Site(daemon, services, federation, proxy, server)
        finally:
            daemon.stop()
            proxy.stop()
            services.close()


def train_request(site: Site) -> TrainRequest:
    federation = site.federation
    source = plan_source(probes.NapPlan)
    (dataset,) = federation.search(TAGS)[NODE]
    return TrainRequest(
        request_id=federation.new_request_id(),
        experiment_id="exp-stream",
        round_index=0,
        dataset_id=dataset.dataset_id,
        plan_blob=federation.blobs.put_bytes(source.encode(), readers=[NODE]),
        plan_digest=plan_digest(source),
        plan_class="NapPlan",
        params_blob=federation.blobs.put_bytes(PARAMS_BYTES, readers=[NODE]),
        training_args={"nap_s": 0.5},
        deadline_s=60.0,
    )


def ask(site: Site, request: TrainRequest) -> Reply:
    replies: queue.Queue[Reply] = queue.Queue()

    def run() -> None:
        for answer in site.federation.ask({NODE: request}, 2 * LOADED_MACHINE_S):
            replies.put(answer.reply)

    threading.Thread(target=run, daemon=True).start()
    return replies.get(timeout=2 * LOADED_MACHINE_S)


def slow_uploads_once_the_inputs_are_in(site: Site) -> None:
    """Cap the node's link once it has downloaded the parameters (while the job naps):
    its upload then takes seconds, the reply does not."""
    wait_for(lambda: site.proxy.stats.bytes_down >= 4_000_000, "the node's download")
    site.proxy.faults.bytes_per_s = UPLOAD_BYTES_PER_S


def ask_on_a_slow_upload_link(site: Site, request: TrainRequest) -> TrainReply:
    """The node's reply to ``request``, its link capped once its inputs are in."""
    capped = threading.Thread(target=slow_uploads_once_the_inputs_are_in, args=(site,))
    capped.start()
    reply = ask(site, request)
    capped.join()
    assert isinstance(reply, TrainReply), reply
    return reply


def assert_repeat_trains_anew(site: Site, request: TrainRequest, old_job_id: str) -> None:
    """A repeat of ``request`` (a new request id) runs a new job, whose update is right."""
    repeat = msgspec.structs.replace(request, request_id=site.federation.new_request_id())
    retrained = ask(site, repeat)
    assert isinstance(retrained, TrainReply), retrained
    assert retrained.job_id != old_job_id
    update = params_from_bytes(site.federation.blobs.get_bytes(retrained.params_blob))
    np.testing.assert_array_equal(update["w"], PARAMS["w"] + 1)


def test_the_reply_comes_while_the_update_uploads_and_the_update_streams_from_then(
    site: Site,
) -> None:
    request = train_request(site)
    reply = ask_on_a_slow_upload_link(site, request)
    uploaded_so_far = site.proxy.stats.bytes_up
    (job,) = site.jobs()
    assert job.outcome == "running"  # its update is still on its way
    assert uploaded_so_far < 4_000_000
    # The researcher's download streams the upload in progress, and gets every byte.
    update = params_from_bytes(site.federation.blobs.get_bytes(reply.params_blob))
    np.testing.assert_array_equal(update["w"], PARAMS["w"] + 1)
    wait_for(lambda: site.jobs()[0].outcome == "succeeded", "the job's success")


def test_an_upload_that_fails_after_the_reply_fails_the_job_and_a_repeat_trains_again(
    site: Site,
) -> None:
    request = train_request(site)
    reply = ask_on_a_slow_upload_link(site, request)
    wait_for(lambda: site.proxy.stats.bytes_up > 1_000_000, "the upload under way")

    def cut_while_running() -> bool:
        # The link keeps dropping: the node tries a cut request again once on a new
        # connection whatever its retry_s, and the reply may have raced the first cut.
        site.proxy.cut()
        return site.jobs()[0].outcome != "running"

    wait_for(cut_while_running, "the job's end", interval_s=0.2)
    (job,) = site.jobs()
    assert job.outcome == "failed"
    assert "upload failed after the reply announced it" in job.message
    assert job.job_id == reply.job_id
    # The same request delivered again hears of the failure, not of the blob.
    again = ask(site, request)
    assert isinstance(again, ErrorReply), again
    assert "failed after the reply" in again.message
    # A resumed researcher's repeat (a new request id) runs the job again.
    site.proxy.faults.bytes_per_s = None
    assert_repeat_trains_anew(site, request, reply.job_id)
    wait_for(lambda: [j.outcome for j in site.jobs()].count("succeeded") == 1, "the new job")


def test_a_repeat_is_answered_from_the_job_while_its_update_is_there_else_trains_again(
    site: Site, tmp_path: Path
) -> None:
    request = train_request(site)
    first = ask(site, request)
    assert isinstance(first, TrainReply), first
    wait_for(lambda: site.jobs()[0].outcome == "succeeded", "the upload stored")
    space = site.uploads._app.space
    site.federation.blobs.get_file(first.params_blob, tmp_path / "update.safetensors")

    def confirmed() -> bool:  # confirmations go out on a thread, after get_file returned
        return RESEARCHER in getattr(space.record_of(first.params_blob), "fetched_by", ())

    wait_for(confirmed, "the researcher's confirmation that it kept the update")

    # A repeat (a researcher that retried the round): the same job, its update offered
    # anew, so the retention waits for the researcher to fetch it again.
    repeat = msgspec.structs.replace(request, request_id=site.federation.new_request_id())
    reattached = ask(site, repeat)
    assert isinstance(reattached, TrainReply) and reattached.job_id == first.job_id
    assert getattr(space.record_of(first.params_blob), "fetched_by", None) == frozenset()

    # Fetched, confirmed and deleted: a repeat now trains again instead of naming it.
    # (The researcher's retry uploads the round's parameters again, as a round does.)
    site.federation.blobs.get_file(first.params_blob, tmp_path / "update.safetensors")
    wait_for(confirmed, "the researcher's second confirmation")
    eager = RetentionPolicy(keep_fetched_s=0, keep_idle_s=3600)
    assert collect(space, eager).blobs >= 1 and not space.has(first.params_blob)
    assert site.federation.blobs.put_bytes(PARAMS_BYTES, [NODE]) == request.params_blob
    assert_repeat_trains_anew(site, request, first.job_id)
