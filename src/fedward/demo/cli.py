"""``fedward demo``: a real federated experiment on this machine, start to finish."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--nodes",
    "n_nodes",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Number of hospital nodes.",
)
@click.option(
    "--rounds", type=click.IntRange(1, 100), default=5, show_default=True, help="Federated rounds."
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep state here (default: a temporary folder, removed at the end).",
)
@click.option(
    "--embedded-broker",
    is_flag=True,
    help="Use the embedded Python broker even if Mosquitto is installed.",
)
def demo(n_nodes: int, rounds: int, workdir: Path | None, embedded_broker: bool) -> None:
    """Start a broker, the upload server and N nodes on loopback, then run federated
    logistic regression on scikit-learn's breast-cancer table split across the nodes.

    Every process it starts is stopped at the end, also on error or Ctrl-C.
    """
    from fedward.demo.breast_cancer import run_breast_cancer_demo

    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="fedward-demo-")) if temporary else Path(workdir)  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        accuracy = run_breast_cancer_demo(
            root,
            n_nodes=n_nodes,
            rounds=rounds,
            embedded_broker=True if embedded_broker else None,
            echo=click.echo,
        )
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    click.echo(
        f"\nfinal held-out accuracy of the global model: {accuracy:.4f}  "
        f"({time.monotonic() - started:.1f} s in all)"
    )
