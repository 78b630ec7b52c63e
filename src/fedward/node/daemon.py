"""The node daemon: presence, request dispatch, replies.

Quick requests (ping, list, search) are answered on the channel's delivery thread, in
arrival order. Plan reviews (approval, plan status) download the plan, so they go to a
thread of their own; training requests go to a small pool of threads, each driving one
job worker. The node thus keeps answering pings and reviews while it trains. Every
request gets exactly one reply: its result or an ``ErrorReply``.
Nothing a researcher sends can stop the daemon.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from fedward import __version__
from fedward.core.ids import ID_PATTERN, new_id
from fedward.core.messages import (
    ApprovalRequest,
    ErrorReply,
    ListRequest,
    Message,
    NodePresence,
    PingRequest,
    PlanStatusRequest,
    Reply,
    Request,
    SearchRequest,
    SecAggMaskRequest,
    SecAggShareRequest,
    SecAggUnmaskRequest,
    TrainRequest,
)
from fedward.errors import Conflict, FedwardError, ProtocolError, TransportError
from fedward.node import handlers, secagg_handler, train_handler
from fedward.node.handlers import NodeContext
from fedward.node.jobs.path_masks import mask_paths
from fedward.node.request_log import RequestLog
from fedward.node.services.heartbeat import HeartbeatThread, NodeHeartbeat
from fedward.node.update_uploads import AnnouncedReply
from fedward.protocol import topics
from fedward.protocol.codec import decode_presence, decode_request, encode, encode_presence
from fedward.transport.channel import Channel, Will

log = logging.getLogger("fedward.node")

ChannelFactory = Callable[[str, Will], Channel]
"""(client_id, will) -> a connected channel."""

Handler = Callable[[NodeContext, str, Any], Reply | AnnouncedReply]

_HANDLERS: dict[type[Message], Handler] = {
    PingRequest: handlers.handle_ping,
    ListRequest: handlers.handle_list,
    SearchRequest: handlers.handle_search,
    PlanStatusRequest: handlers.handle_plan_status,
    ApprovalRequest: handlers.handle_approval,
    TrainRequest: train_handler.handle_train,
    SecAggShareRequest: secagg_handler.handle_share,
    SecAggMaskRequest: secagg_handler.handle_mask,
    SecAggUnmaskRequest: secagg_handler.handle_unmask,
}
# Requests that download or upload a blob, or wait for adverts: answered off the delivery
# thread. Training has its own pool, so that reviews and status questions are answered
# while jobs run.
_REVIEW = (
    ApprovalRequest,
    PlanStatusRequest,
    SecAggShareRequest,
    SecAggMaskRequest,
    SecAggUnmaskRequest,
)


class _LooseRequestId(msgspec.Struct):
    request_id: Any = None


def _request_id_of(payload: bytes) -> str:
    """Best effort: the request id of a message we could not decode, to address the error."""
    try:
        value = msgspec.json.decode(payload, type=_LooseRequestId).request_id
    except msgspec.DecodeError:
        return "unknown"
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else "unknown"


class NodeDaemon:
    def __init__(
        self, context: NodeContext, channel_factory: ChannelFactory, max_jobs: int = 2
    ) -> None:
        self._ctx = context
        self._node_id = context.config.node_id
        self._instance_id = new_id("inst")
        self._channel_factory = channel_factory
        self._channel: Channel | None = None
        self._jobs = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="train")
        self._reviews = ThreadPoolExecutor(max_workers=1, thread_name_prefix="review")
        self._stopped = threading.Event()
        self._send_lock = threading.Lock()
        self._heartbeat: HeartbeatThread | None = None
        self._requests = RequestLog()  # a request delivered twice is answered once

    @property
    def node_id(self) -> str:
        return self._node_id

    def isolation_lines(self) -> list[str]:
        """The job workers' isolation layers, thread budget and guarantees, as the runner
        applies them."""
        return self._ctx.runner.report_lines()

    def start(self, presence_wait_s: float = 10.0) -> None:
        """Connect, refuse to run if the same node id is already online, announce presence."""
        offline = encode_presence(NodePresence(state="offline", instance_id=self._instance_id))
        presence = topics.presence_topic(self._node_id)
        channel = self._channel_factory(
            f"node-{self._node_id}-{self._instance_id}", Will(presence, offline)
        )
        seen: list[NodePresence] = []
        marker_back = threading.Event()

        def on_presence(topic: str, payload: bytes) -> None:
            try:
                message = decode_presence(payload)
            except ProtocolError:
                log.warning("ignoring malformed presence message on %s", topic)
                return
            if message.instance_id == self._instance_id:
                marker_back.set()
            else:
                seen.append(message)

        channel.subscribe(presence, on_presence)
        # The broker hands a retained presence to a new subscriber before anything published
        # after the subscription, so once our own (unretained) marker comes back we have seen
        # whoever claims this node id: no guessing how long to wait, even on a loaded host.
        channel.publish(presence, offline)
        if not marker_back.wait(presence_wait_s):
            channel.close()
            raise TransportError(
                f"the broker did not echo node {self._node_id!r}'s presence check "
                f"within {presence_wait_s:.0f} s",
                hint="check the broker's ACL lets this node read and write its presence topic",
            )
        online = [p for p in seen if p.state == "online"]
        if online:
            channel.close()
            raise Conflict(
                f"node {self._node_id!r} is already online (instance {online[-1].instance_id})",
                hint="stop the other node first, or give this one another NODE_ID",
            )
        # Jobs left "running" by a previous instance that died can never finish now.
        self._ctx.services.jobs.finish_interrupted()
        for topic_filter in topics.node_subscriptions(self._node_id):
            channel.subscribe(topic_filter, self._on_message)
        self._ctx.secure_aggregation.attach(
            self._node_id, channel, self._ctx.config.state_dir / "secagg"
        )
        channel.publish(
            presence,
            encode_presence(
                NodePresence(state="online", instance_id=self._instance_id, version=__version__)
            ),
            retain=True,
        )
        self._channel = channel
        # The GUI (another process) tells from this file whether the daemon runs, and how
        # its jobs are isolated.
        self._heartbeat = NodeHeartbeat(self._ctx.config.state_dir).start(
            self._ctx.runner.report_lines()
        )
        log.info("node %s online", self._node_id)

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            researcher_id = topics.sender_of_request(topic, self._node_id)
        except (ProtocolError, ValueError):
            log.warning("ignoring message on unexpected topic %r", topic)
            return
        try:
            request = decode_request(payload, self._ctx.config.max_message_bytes)
        except ProtocolError as exc:
            log.warning("refused a message from %s: %s", researcher_id, exc)
            self._reply(
                researcher_id,
                ErrorReply(request_id=_request_id_of(payload), code=exc.code, message=str(exc)),
            )
            return
        claim = self._requests.claim(researcher_id, request.request_id)
        if claim != "new":
            if claim != "in_progress":
                self._reply(researcher_id, claim)
            return
        if isinstance(request, TrainRequest):
            self._jobs.submit(self._handle, researcher_id, request)
        elif isinstance(request, _REVIEW):
            self._reviews.submit(self._handle, researcher_id, request)
        else:
            self._handle(researcher_id, request)

    def _handle(self, researcher_id: str, request: Request) -> None:
        handler = _HANDLERS[type(request)]
        finish: Callable[[], ErrorReply | None] | None = None
        try:
            answer = handler(self._ctx, researcher_id, request)
            if isinstance(answer, AnnouncedReply):  # sent first, its work ends after
                reply, finish = answer.reply, answer.finish
            else:
                reply = answer
        except FedwardError as exc:
            log.info("request %s from %s refused: %s", request.request_id, researcher_id, exc)
            reply = ErrorReply(
                request_id=request.request_id, code=exc.code, message=str(exc)[:20_000]
            )
        except Exception:
            log.exception("internal error while handling %s", type(request).__name__)
            reply = ErrorReply(
                request_id=request.request_id,
                code="internal",
                message="internal error on the node; the node's log has the details",
            )
        if isinstance(reply, ErrorReply):
            reply = msgspec.structs.replace(reply, message=self._masked(reply.message))
        self._requests.answered(researcher_id, request.request_id, reply)
        self._reply(researcher_id, reply)
        if finish is not None and (failed := finish()) is not None:
            # What the reply announced failed: a copy of the request delivered again
            # hears that, not the first reply.
            failed = msgspec.structs.replace(failed, message=self._masked(failed.message))
            self._requests.answered(researcher_id, request.request_id, failed)

    def _masked(self, message: str) -> str:
        """No error leaves with the node's own paths in it (a full disk names its folder)."""
        config = self._ctx.config
        places = {str(config.state_dir): "<node>", str(config.state_dir.parent): "<node folder>"}
        if config.data_root is not None:
            places[str(config.data_root)] = "<data root>"
        return mask_paths(message, places)

    def _reply(self, researcher_id: str, reply: Message) -> None:
        channel = self._channel
        if channel is None:
            return
        try:
            with self._send_lock:
                channel.publish(topics.reply_topic(researcher_id, self._node_id), encode(reply))
        except FedwardError as exc:
            log.error("could not send reply to %s: %s", researcher_id, exc)

    def send_event(self, researcher_id: str, event: Message) -> None:
        self._reply(researcher_id, event)

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._stopped.wait(timeout_s)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        channel = self._channel
        if channel is not None:
            try:
                offline = NodePresence(
                    state="offline", instance_id=self._instance_id, version=__version__
                )
                channel.publish(
                    topics.presence_topic(self._node_id), encode_presence(offline), retain=True
                )
            except FedwardError:
                pass
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._jobs.shutdown(wait=False, cancel_futures=True)
        self._reviews.shutdown(wait=False, cancel_futures=True)
        self._ctx.runner.close()
        if channel is not None:
            channel.close()
        log.info("node %s stopped", self._node_id)
