"""``fedward researcher``: the researcher's tools outside a notebook.

- ``nodes``        who is online and which datasets they offer (never paths)
- ``run``          run (or ``--resume``) an experiment described in ``experiment.toml``
- ``notebook``     Jupyter for the notebooks, on 127.0.0.1:8888 unless ``RESEARCHER_HOST``
- ``tensorboard``  TensorBoard on the experiments' logs, 127.0.0.1:6006 likewise

The researcher's connection comes from ``--config`` (TOML) and the seed's environment
variables (``MQTT_BROKER``, ``UPLOADS_URL``, ...), as ``fedward.config.loader`` reads them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import click

DEFAULT_HOST = "127.0.0.1"

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The researcher's TOML configuration (else the environment variables).",
)
host_option = click.option(
    "--host",
    envvar="RESEARCHER_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (also RESEARCHER_HOST).",
)


@click.group("researcher")
def researcher() -> None:
    """Researcher tools: nodes, experiments, notebooks, TensorBoard."""


@researcher.command("nodes")
@config_option
@click.option("--timeout", "timeout_s", type=float, default=3.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def nodes(config_file: Path | None, timeout_s: float, as_json: bool) -> None:
    """Nodes that are online, and the datasets each offers."""
    import msgspec

    from fedward.researcher.connect import connect

    federation = connect(config_file=config_file)
    try:
        federation.settle_presence(min(1.0, timeout_s))
        datasets = federation.list_datasets(timeout_s)
        online = set(federation.online_nodes()) | set(datasets)
        offline = set(federation.offline_nodes()) - online
    finally:
        federation.close()
    if as_json:
        listing = {
            node_id: {
                "state": "online" if node_id in online else "offline",
                "datasets": [msgspec.to_builtins(d) for d in datasets.get(node_id, [])],
            }
            for node_id in sorted(online | offline)
        }
        click.echo(json.dumps(listing, indent=1))
        return
    if not online and not offline:
        click.echo("no node answered")
        return
    for node_id in sorted(online | offline):
        state = "online" if node_id in online else "offline"
        click.echo(f"{node_id}  {state}")
        for dataset in datasets.get(node_id, []):
            shape = "x".join(str(n) for n in dataset.shape) or "?"
            click.echo(
                f"  {dataset.dataset_id}  {dataset.name!r}  {dataset.data_type}  "
                f"tags={','.join(dataset.tags)}  samples={dataset.sample_count}  shape={shape}"
            )
        if node_id in online and not datasets.get(node_id):
            click.echo("  (no dataset, or no answer in time)")


@researcher.command("run")
@click.argument("experiment_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@config_option
@click.option("--resume", is_flag=True, help="Carry on from the experiment's last checkpoint.")
@click.option("--rounds", type=click.IntRange(1), default=None, help="Override the rounds.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def run(
    experiment_file: Path, config_file: Path | None, resume: bool, rounds: int | None, quiet: bool
) -> None:
    """Run the experiment described in EXPERIMENT_FILE (TOML: the plan, its arguments,
    tags, rounds, aggregator; examples/experiment.toml shows every key)."""
    from fedward.protocol.params_wire import save_params
    from fedward.researcher.connect import connect
    from fedward.researcher.experiment import Experiment
    from fedward.researcher.experiment_file import read_experiment_file

    described = read_experiment_file(experiment_file)
    settings = dict(described.settings)
    if rounds is not None:
        settings["rounds"] = rounds
    federation = connect(config_file=config_file)
    try:
        if resume:
            if "experiment_id" not in settings:
                raise click.UsageError("--resume needs experiment_id in the experiment file")
            experiment = Experiment.load_checkpoint(
                "latest",
                federation=federation,
                experiment_id=settings["experiment_id"],
                training_plan=described.plan,
                aggregator=settings["aggregator"],
                node_selection=settings["node_selection"],
                progress=not quiet,
                **{k: settings[k] for k in ("rounds", "tensorboard") if k in settings},
            )
            click.echo(f"resuming {experiment.experiment_id} after round {experiment.round_index}")
        else:
            experiment = Experiment(
                training_plan=described.plan,
                federation=federation,
                progress=not quiet,
                **settings,
            )
        history = experiment.run()
    finally:
        federation.close()
    click.echo(f"experiment {experiment.experiment_id}: {len(history)} round(s)")
    for record in history:
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in sorted(record.metrics.items()))
        dropped = f"  dropped={','.join(record.dropped)}" if record.dropped else ""
        click.echo(
            f"  round {record.round_index + 1}: ok={','.join(record.succeeded)}{dropped}  {metrics}"
        )
    if experiment.last_checkpoint is not None:
        click.echo(f"checkpoint: {experiment.last_checkpoint}")
    if described.plot is not None:
        click.echo(f"plot: {experiment.plot(described.plot)}")
    if described.save is not None:
        described.save.parent.mkdir(parents=True, exist_ok=True)
        save_params(experiment.aggregated_params(), described.save)
        click.echo(f"final parameters: {described.save}")


def _run_server(command: list[str], what: str) -> None:
    click.echo(f"starting {what}: {' '.join(command)}", err=True)
    try:
        code = subprocess.call(command)
    except KeyboardInterrupt:
        code = 130
    if code:
        raise click.exceptions.Exit(code)


def _needs(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise click.ClickException(f"{what} is not installed: pip install 'fedward[notebooks]'")


@researcher.command("notebook")
@host_option
@click.option("--port", type=int, default=8888, show_default=True)
@click.option(
    "--dir",
    "notebook_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("notebooks"),
    show_default=True,
)
@click.option("--print-command", is_flag=True, help="Print the command instead of running it.")
def notebook(host: str, port: int, notebook_dir: Path, print_command: bool) -> None:
    """Jupyter (Lab if installed, else Notebook) on the fedward notebooks."""
    app = "lab" if importlib.util.find_spec("jupyterlab") else "notebook"
    command = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        f"--ServerApp.root_dir={notebook_dir}",
        "--no-browser",
    ]
    if print_command:
        click.echo(" ".join(command))
        return
    _needs("jupyter_server", "Jupyter")
    _run_server(command, "Jupyter")


@researcher.command("tensorboard")
@host_option
@click.option("--port", type=int, default=6006, show_default=True)
@click.option(
    "--logdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="The experiments' TensorBoard folder (Experiment(tensorboard=...)).",
)
@click.option("--print-command", is_flag=True, help="Print the command instead of running it.")
def tensorboard(host: str, port: int, logdir: Path, print_command: bool) -> None:
    """TensorBoard on the experiments' logs (one run per node, plus ``aggregate``)."""
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if print_command:
        click.echo(" ".join(command))
        return
    _needs("tensorboard", "TensorBoard")
    _run_server(command, "TensorBoard")
