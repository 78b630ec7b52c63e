"""Build a running node from its configuration: the only place concrete adapters are chosen."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from fedward.config.model import NodeConfig
from fedward.errors import ConfigError
from fedward.node.daemon import ChannelFactory, NodeDaemon
from fedward.node.default_plans import default_plans
from fedward.node.gpu import DeviceProbe, cuda_device_count
from fedward.node.handlers import NodeContext
from fedward.node.jobs.isolation import WorkerIsolation
from fedward.node.jobs.runner import JobRunner
from fedward.node.privacy_ledger import PrivacyLedger
from fedward.node.services import NodeServices, open_node_services_for
from fedward.transport.blobs import BlobStore
from fedward.transport.channel import Will

log = logging.getLogger("fedward.node")


def mqtt_channel_factory(config: NodeConfig) -> ChannelFactory:
    from fedward.transport.mqtt import MqttChannel

    def factory(client_id: str, will: Will) -> MqttChannel:
        return MqttChannel(config.broker, client_id=client_id, will=will)

    return factory


def http_blob_store(config: NodeConfig) -> BlobStore:
    from fedward.transport.http_blobs import HttpBlobStore

    if config.uploads.token is None:
        raise ConfigError(
            "no upload-server token for this node",
            hint="set FEDWARD_UPLOADS_TOKEN_FILE or uploads.token_file in the node config",
        )
    return HttpBlobStore(config.uploads.base_url, config.uploads.token.reveal())


def secret_folders(config: NodeConfig) -> list[Path]:
    """Folders holding the node's secrets, hidden from job workers even where they lie
    inside a folder a worker must read (a Python installation, say)."""
    folders = [config.state_dir.resolve()]
    for secret in (config.broker.password, config.uploads.token):
        if secret is not None and secret.path is not None:
            folders.append(secret.path.parent)
    return folders


def build_node_daemon(
    config: NodeConfig,
    *,
    channel_factory: ChannelFactory | None = None,
    blobs: BlobStore | None = None,
    services: NodeServices | None = None,
    isolation: WorkerIsolation | None = None,
    device_probe: DeviceProbe = cuda_device_count,
    warn: Callable[[str], None] = log.warning,
) -> NodeDaemon:
    """A node daemon, not yet started; ``isolation`` defaults to the best this host offers."""
    if not config.approval_required:
        warn(
            "training-plan approval is DISABLED (ENABLE_TRAINING_PLAN_APPROVAL=false): "
            "any plan a researcher sends will run on this node's data"
        )
    services = services or open_node_services_for(config)
    if config.allow_default_plans:
        services.plans.sync_defaults(default_plans())
    else:
        services.plans.sync_defaults([])
    runner = JobRunner(
        config.jobs_dir,
        config.jobs,
        isolation,
        node_id=config.node_id,
        hidden=secret_folders(config),
    )
    for line in runner.report_lines():
        log.info("job isolation: %s", line)
    refusal = runner.refusal()
    if refusal is not None:
        warn(refusal)
    holder: list[NodeDaemon] = []
    context = NodeContext(
        config=config,
        services=services,
        blobs=blobs or http_blob_store(config),
        runner=runner,
        send_event=lambda researcher_id, event: holder[0].send_event(researcher_id, event),
        privacy_ledger=PrivacyLedger.in_state_dir(config.state_dir),
        device_probe=device_probe,
    )
    daemon = NodeDaemon(
        context, channel_factory or mqtt_channel_factory(config), max_jobs=config.jobs.max_parallel
    )
    holder.append(daemon)
    return daemon
