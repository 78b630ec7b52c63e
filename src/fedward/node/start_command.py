"""``fedward node start``: run the node daemon until interrupted."""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from typing import Any

import click

from fedward.config.loader import load_node_config
from fedward.config.model import GpuPolicy, NodeConfig


def _base_config(ctx: click.Context) -> NodeConfig:
    """The config loaded by the ``node`` group (``--config``, ``--state-dir``) or the env."""
    obj: Any = ctx.find_root().obj if ctx.find_root().obj is not None else ctx.obj
    for candidate in (
        getattr(obj, "config", None),
        obj.get("config") if isinstance(obj, dict) else None,
    ):
        if isinstance(candidate, NodeConfig):
            return candidate
    loader = getattr(obj, "load_config", None)
    if callable(loader):
        loaded = loader()
        if isinstance(loaded, NodeConfig):
            return loaded
    return load_node_config()


@click.command("start")
@click.option(
    "--gpu", "gpu_mode", flag_value="allowed", help="Use the GPU when a researcher asks for it."
)
@click.option(
    "--gpu-only", "gpu_mode", flag_value="only", help="Always train on the GPU when one is present."
)
@click.option(
    "--gpu-num", type=click.IntRange(min=0), default=0, show_default=True, help="Which CUDA device."
)
@click.option(
    "--no-sandbox",
    is_flag=True,
    help="Do not restrict the job worker's file access (debugging only).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Node TOML config.",
)
@click.pass_context
def start(
    ctx: click.Context,
    gpu_mode: str | None,
    gpu_num: int,
    no_sandbox: bool,
    config_file: Path | None,
) -> None:
    """Start the node daemon: connect to the broker, answer researchers, run approved jobs.

    Settings come from the node config file and the seed's variables (NODE_ID, MQTT_BROKER,
    MQTT_BROKER_PORT, UPLOADS_URL, ENABLE_TRAINING_PLAN_APPROVAL, ALLOW_DEFAULT_TRAINING_PLANS).
    """
    from fedward.node.wiring import build_node_daemon

    config = load_node_config(config_file) if config_file else _base_config(ctx)
    if gpu_mode:
        config = dataclasses.replace(config, gpu=GpuPolicy(mode=gpu_mode, device_index=gpu_num))  # type: ignore[arg-type]
    daemon = build_node_daemon(
        config,
        sandbox=not no_sandbox,
        warn=lambda m: click.secho(f"warning: {m}", fg="yellow", err=True),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    click.echo(
        f"node {config.node_id} online (broker {config.broker.host}:{config.broker.port}); "
        "Ctrl-C to stop",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        daemon.stop()
