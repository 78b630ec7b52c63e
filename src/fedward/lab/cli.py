"""``fedward lab``: the whole topology in network namespaces on this machine (Linux, root)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from fedward.errors import AccessDenied
from fedward.lab.deploy import lab_down, lab_up, peer_folder
from fedward.lab.state import LabState

DEFAULT_LAB_DIR = Path("~/.fedward/lab")
_DIR_OPTION = click.option(
    "--dir",
    "lab_dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="FEDWARD_LAB_DIR",
    default=DEFAULT_LAB_DIR,
    show_default=True,
    help="Where the lab keeps its files (env FEDWARD_LAB_DIR).",
)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise AccessDenied("the lab creates network namespaces and interfaces: run it as root")


@click.group("lab")
def lab() -> None:
    """The seed's VPN deployment in network namespaces: vpnserver, mqtt, restful,
    researcher and N nodes, each in its own namespace, talking only through WireGuard."""


@lab.command()
@click.option("--nodes", type=click.IntRange(1, 100), default=3, show_default=True)
@_DIR_OPTION
def up(nodes: int, lab_dir: Path) -> None:
    """Create the namespaces, the VPN, the broker and the upload server."""
    _require_root()
    lab_dir = lab_dir.expanduser()
    try:
        state = lab_up(lab_dir, nodes, progress=lambda step: click.echo(f"lab: {step}"))
    except BaseException:
        click.echo(f"lab up failed; clean up with: fedward lab down --dir {lab_dir}", err=True)
        raise
    click.echo(f"lab {state.lab_id} is up in {lab_dir}")
    for component in state.topology.components:
        click.echo(f"  {component:<11} ip netns exec {state.topology.namespace(component)} ...")
    for component in state.topology.peers:
        env_file = peer_folder(state, component) / "fedward.env"
        if env_file.exists():
            click.echo(f"  {component:<11} settings: {env_file}")


@lab.command()
@_DIR_OPTION
@click.option("--rounds", type=click.IntRange(1, 100), default=2, show_default=True)
def run(lab_dir: Path, rounds: int) -> None:
    """Run the demo experiment: nodes in their namespaces, the researcher in its own."""
    _require_root()
    from fedward.lab.run import lab_run  # scikit-learn and the researcher only when used

    click.echo(
        lab_run(lab_dir.expanduser(), rounds=rounds, progress=lambda s: click.echo(f"lab: {s}"))
    )


@lab.command()
@_DIR_OPTION
@click.option("--keep-files", is_flag=True, help="Keep the lab directory (logs, folders).")
def down(lab_dir: Path, keep_files: bool) -> None:
    """Remove every namespace, interface and process the lab made (also after a failed up)."""
    _require_root()
    problems = lab_down(lab_dir.expanduser(), keep_files=keep_files)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo("lab is down" if not problems else "lab is down, with the warnings above")


@lab.command()
@_DIR_OPTION
def status(lab_dir: Path) -> None:
    """The lab's namespaces, tunnels and processes."""
    state = LabState.load(lab_dir.expanduser())
    click.echo(f"lab {state.lab_id} in {state.lab_dir}: {'ready' if state.ready else 'NOT ready'}")
    for namespace in state.namespaces:
        click.echo(f"  namespace {namespace}")
    for process in state.processes:
        click.echo(f"  process {process.name} (pid {process.pid}) in {process.component}")
