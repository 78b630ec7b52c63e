"""``fedward node start``: run the node daemon until interrupted."""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from fedward.config.loader import load_node_config
from fedward.config.model import GpuMode, NodeConfig

if TYPE_CHECKING:
    from fedward.node.jobs.isolation import WorkerIsolation


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
    "--gpu-num",
    type=click.IntRange(min=0),
    default=None,
    help="Which CUDA device (default: the config's [gpu] device_index, else 0).",
)
@click.option(
    "--no-sandbox",
    is_flag=True,
    help="Do not sandbox the job workers (debugging only; plans can then read the node's files).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Print the settings the node would run with, and exit without connecting.",
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
    gpu_num: int | None,
    no_sandbox: bool,
    check: bool,
    config_file: Path | None,
) -> None:
    """Start the node daemon: connect to the broker, answer researchers, run approved jobs.

    Settings come from the node config file and the seed's variables (NODE_ID, MQTT_BROKER,
    MQTT_BROKER_PORT, UPLOADS_URL, ENABLE_TRAINING_PLAN_APPROVAL, ALLOW_DEFAULT_TRAINING_PLANS).
    """
    from fedward.node.jobs.isolation import WorkerIsolation

    config = with_gpu_flags(
        load_node_config(config_file) if config_file else _base_config(ctx), gpu_mode, gpu_num
    )
    isolation = (
        WorkerIsolation.none()
        if no_sandbox
        else WorkerIsolation.for_host(config.jobs.sandbox, config.jobs.require)
    )
    from fedward.node.wiring import build_node_daemon, http_blob_store

    if check:
        # The refusals 'start' would meet before connecting (no upload token, bad URL);
        # the client connects only on a request, so nothing is left open.
        http_blob_store(config)
        click.echo(describe_settings(config, isolation))
        return

    daemon = build_node_daemon(
        config,
        isolation=isolation,
        warn=lambda m: click.secho(f"warning: {m}", fg="yellow", err=True),
    )
    click.echo("job isolation:", err=True)
    for line in daemon.isolation_lines():
        click.echo(f"  {line}", err=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    from fedward.node.services.retention import start_job_folder_collector

    collector = start_job_folder_collector(config)
    click.echo(
        f"node {config.node_id} online (broker {config.broker.host}:{config.broker.port}); "
        "Ctrl-C to stop",
        err=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        if collector is not None:
            collector.stop()
        daemon.stop()


def with_gpu_flags(config: NodeConfig, gpu_mode: str | None, gpu_num: int | None) -> NodeConfig:
    """The config's GPU policy, overridden by ``--gpu``/``--gpu-only`` and ``--gpu-num``."""
    policy = config.gpu
    if gpu_mode is not None:
        policy = dataclasses.replace(policy, mode=cast(GpuMode, gpu_mode))
    if gpu_num is not None:
        policy = dataclasses.replace(policy, device_index=gpu_num)
    return dataclasses.replace(config, gpu=policy)


def describe_settings(config: NodeConfig, isolation: WorkerIsolation) -> str:
    from fedward.node.jobs.threads import ThreadBudget

    gpu = {"off": "off (CPU only)", "allowed": "when the researcher asks", "only": "always"}
    rows = [
        ("node id", config.node_id),
        ("state dir", str(config.state_dir)),
        ("broker", f"{config.broker.host}:{config.broker.port}"),
        ("uploads", config.uploads.base_url),
        ("plan approval", "required" if config.approval_required else "DISABLED"),
        ("default plans", "approved at start" if config.allow_default_plans else "not offered"),
        ("digest", config.digest_algorithm),
        ("gpu", f"{gpu[config.gpu.mode]}, device {config.gpu.device_index}"),
        ("job memory", f"{config.jobs.memory_mb} MiB"),
        ("job cpu time", f"{config.jobs.cpu_s} s"),
        ("idle workers", f"stopped after {config.jobs.idle_worker_s:g} s"),
        ("job disk", f"{config.jobs.disk_mb} MiB per job"),
        ("job processes", f"{config.jobs.pids_max} per job"),
        ("parallel jobs", str(config.jobs.max_parallel)),
        ("job threads", ThreadBudget.for_limits(config.jobs).describe()),
        ("sandbox", config.jobs.sandbox),
    ]
    text = "\n".join(f"{key + ':':<15}{value}" for key, value in rows)
    return text + "\njob isolation:\n" + "\n".join(f"  {line}" for line in isolation.report_lines())
