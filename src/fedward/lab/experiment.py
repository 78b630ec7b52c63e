"""The demo experiment as the lab's researcher runs it, inside its namespace.

``lab run`` starts ``python -m fedward.lab.experiment --nodes node1,node2,node3`` in the
researcher's namespace with the settings of its enrolment folder (``fedward.env``), so the
researcher reaches the broker and the upload server only through its WireGuard tunnel.
It is the breast-cancer demo of ``fedward demo``, with the nodes of the lab.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from fedward.config.loader import load_researcher_config
from fedward.demo.breast_cancer import run_demo_experiment
from fedward.demo.data import breast_cancer_split
from fedward.errors import TransportError
from fedward.researcher.connect import connect
from fedward.researcher.federation import Federation

ACCURACY_LABEL = "final held-out accuracy:"


def wait_for_nodes(federation: Federation, node_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not set(node_ids) <= set(federation.online_nodes()):
        if time.monotonic() > deadline:
            online = ", ".join(federation.online_nodes()) or "none"
            raise TransportError(
                f"nodes {node_ids} not all online after {timeout_s:.0f} s: {online}"
            )
        time.sleep(0.2)


def run_lab_experiment(node_ids: list[str], rounds: int) -> float:
    """Run the experiment; return the global model's accuracy on the held-out split."""
    with tempfile.TemporaryDirectory(prefix="fedward-lab-researcher-") as scratch:
        split = breast_cancer_split(Path(scratch), len(node_ids))  # for the held-out split
    federation = connect(load_researcher_config())
    try:
        wait_for_nodes(federation, node_ids, timeout_s=60)
        click.echo(f"{len(node_ids)} nodes online through the VPN: {', '.join(node_ids)}")
        return run_demo_experiment(
            federation,
            node_ids,
            split,
            rounds=rounds,
            echo=click.echo,
            round_timeout_s=120,
            min_replies=len(node_ids),
        )
    finally:
        federation.close()


@click.command()
@click.option("--nodes", required=True, help="Comma-separated node ids.")
@click.option("--rounds", type=click.IntRange(1, 100), default=2, show_default=True)
def main(nodes: str, rounds: int) -> None:
    accuracy = run_lab_experiment(nodes.split(","), rounds)
    click.echo(f"{ACCURACY_LABEL} {accuracy:.4f}")


if __name__ == "__main__":
    main()
