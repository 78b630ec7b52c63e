"""The ``fedward`` command: wires each component's subcommands and maps errors to exit codes.

Subcommand groups are imported only when used, so ``fedward --help`` is instant and a
missing optional extra (say, the GUI's) only affects its own command.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from fedward import __version__
from fedward.errors import FedwardError

# name -> ("module", "attribute", "one-line help")
_SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("fedward.demo.cli", "demo", "Run a real federated experiment on this machine."),
    "node": ("fedward.node.cli", "node", "Run a node: datasets, training plans, jobs."),
    "researcher": (
        "fedward.researcher.cli",
        "researcher",
        "Researcher tools: nodes, run, notebook.",
    ),
    "uploads": ("fedward.uploads.cli", "uploads", "The upload server (restful in the seed)."),
    "broker": ("fedward.broker.cli", "broker", "Render and run the Mosquitto broker (mqtt)."),
    "vpn": ("fedward.vpn.cli", "vpn", "WireGuard VPN: server, peers, interfaces (vpnserver)."),
    "lab": ("fedward.lab.cli", "lab", "The whole topology in network namespaces (root)."),
    "gui": ("fedward.gui.cli", "gui", "The node's web GUI."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _SUBCOMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attribute, _ = spec
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("fedward"):
                raise click.ClickException(
                    f"'fedward {cmd_name}' needs the Python package {exc.name!r}: "
                    f"pip install 'fedward[all]'"
                ) from exc
            raise
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, spec[2]) for name, spec in sorted(_SUBCOMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fedward")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """fedward: federated learning for biomedical research, inside a WireGuard VPN."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: runs the CLI, turns FedwardError into a message and exit code."""
    try:
        return cli.main(args=argv, prog_name="fedward", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FedwardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
