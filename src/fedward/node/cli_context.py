"""What every ``fedward node`` sub-command shares: the loaded config and services."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

import click

from fedward.config.loader import load_node_config
from fedward.config.model import NodeConfig
from fedward.node.services import NodeServices, open_node_services_for


@dataclass
class NodeCliContext:
    """What ``fedward node`` options decided; sub-commands load config and services lazily."""

    config_path: Path | None = None
    state_dir: Path | None = None
    node_id: str | None = None
    _config: NodeConfig | None = field(default=None, repr=False)
    _services: NodeServices | None = field(default=None, repr=False)

    def load_config(self) -> NodeConfig:
        if self._config is None:
            self._config = load_node_config(
                self.config_path, node_id=self.node_id, state_dir=self.state_dir
            )
        return self._config

    def services(self) -> NodeServices:
        if self._services is None:
            self._services = open_node_services_for(self.load_config())
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()
            self._services = None


pass_node = click.make_pass_decorator(NodeCliContext)


def admin_name() -> str:
    """Who is at the keyboard, for the audit log."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "admin"
