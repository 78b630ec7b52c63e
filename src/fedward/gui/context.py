"""Everything a GUI request handler needs, built once when the server starts.

Nothing here runs at import time: ``open_gui_context`` opens the node's services and
the GUI account database, and ``GuiContext.close`` closes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedward.config.model import NodeConfig
from fedward.gui.account_database import AccountDatabase
from fedward.gui.accounts import AccountService
from fedward.gui.folder_browser import FolderBrowser
from fedward.gui.login_throttle import LoginThrottle
from fedward.gui.password_gate import PasswordGate
from fedward.gui.sessions import SessionStore
from fedward.gui.settings import GuiSettings
from fedward.node.services import NodeServices, open_node_services_for

GUI_DATABASE_NAME = "gui.sqlite3"


def gui_database_path(config: NodeConfig) -> Path:
    return config.state_dir / GUI_DATABASE_NAME


@dataclass
class GuiContext:
    node: NodeConfig
    settings: GuiSettings
    services: NodeServices
    accounts: AccountService
    sessions: SessionStore
    passwords: PasswordGate
    folders: FolderBrowser
    account_database: AccountDatabase

    def close(self) -> None:
        self.account_database.close()
        self.services.close()


def open_accounts(config: NodeConfig) -> tuple[AccountDatabase, AccountService]:
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = AccountDatabase(gui_database_path(config))
    return database, AccountService(database)


def open_gui_context(node: NodeConfig, settings: GuiSettings) -> GuiContext:
    services = open_node_services_for(node)
    database, accounts = open_accounts(node)
    return GuiContext(
        node=node,
        settings=settings,
        services=services,
        accounts=accounts,
        sessions=SessionStore(
            database,
            idle_timeout_s=settings.session_idle_timeout_s,
            max_age_s=settings.session_max_age_s,
        ),
        passwords=PasswordGate(LoginThrottle(settings.throttle)),
        folders=FolderBrowser(node.data_root),
        account_database=database,
    )
