"""The ``fedward`` command: wires each component's subcommands and maps errors to exit codes.

Subcommand groups are imported only when used, so ``fedward --help`` is instant and a
missing optional extra (say, the GUI's) only affects its own command.

SIGTERM (``kill``, ``systemctl stop``, ``docker stop``) ends a command the way Ctrl-C does:
the command unwinds, so its ``finally`` blocks and context managers run and a child it
waits for (TensorBoard, Jupyter) goes with it instead of being left behind. The process then
ends by SIGTERM, so whoever sent it still sees that status. Commands that handle SIGTERM
themselves (``node start``, the servers) install their own handler, which takes precedence.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from types import FrameType
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
    "doctor": (
        "fedward.doctor.cli",
        "doctor",
        "Check this machine's part of the federation; say how to fix what fails.",
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


class Terminated(BaseException):
    """SIGTERM arrived: unwind like KeyboardInterrupt (not an error, so not a FedwardError)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def _end_by_signal(signum: int) -> None:
    """End this process by ``signum`` itself, so the parent sees "killed by SIGTERM"."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # only if the signal is blocked


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: runs the CLI, turns FedwardError into a message and exit code."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # an inherited "ignore" stays
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return cli.main(args=argv, prog_name="fedward", standalone_mode=False)
    except Terminated as exc:
        _end_by_signal(exc.signum)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        exc.show()  # with the usage line and the hint to --help
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except FedwardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    sys.exit(main())
