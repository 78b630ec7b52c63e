"""Wiring: a ``Federation`` over the real MQTT channel and upload server, from configuration."""

from __future__ import annotations

from pathlib import Path

from fedward.config.loader import load_researcher_config
from fedward.config.model import ResearcherConfig
from fedward.core.ids import new_id
from fedward.errors import ConfigError
from fedward.researcher.federation import Federation
from fedward.transport.http_blobs import HttpBlobStore
from fedward.transport.mqtt import MqttChannel


def connect(config: ResearcherConfig | None = None, config_file: Path | None = None) -> Federation:
    config = config or load_researcher_config(config_file)
    if config.uploads.token is None:
        raise ConfigError(
            "no upload-server token for the researcher",
            hint="set FEDWARD_UPLOADS_TOKEN_FILE or uploads.token_file",
        )
    channel = MqttChannel(config.broker, client_id=new_id(f"r-{config.researcher_id}"[:50]))
    try:
        blobs = HttpBlobStore(config.uploads.base_url, config.uploads.token.reveal())
    except BaseException:
        channel.close()
        raise
    federation = Federation(
        config.researcher_id,
        channel,
        blobs,
        max_message_bytes=config.max_message_bytes,
        state_dir=config.state_dir,
    )
    federation.on_close(channel.close)
    federation.on_close(blobs.close)
    return federation
