"""The dashboard says whether the node daemon runs, from its heartbeat file, and under
which isolation its jobs run; and the node's privacy policy with each researcher's spent
epsilon."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from fedward.node.privacy_ledger import PrivacyLedger
from fedward.node.services import NodeHeartbeat
from fedward.privacy.accounting import PrivacyEvent

from .conftest import ConsoleErrors, sign_in
from .gui_process import PASSWORDS, GuiProcess, add_user, write_node_config


def test_dashboard_shows_the_daemon_heartbeat_and_isolation_layers(
    tmp_path: Path, page: Page, console_errors: ConsoleErrors
) -> None:
    state_dir = tmp_path / "state"
    config = write_node_config(state_dir, tmp_path / "data")
    add_user(config, "victor", "viewer", PASSWORDS["victor"], tmp_path)
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    try:
        sign_in(page, gui.url, "victor")
        expect(page.locator("#daemon-state")).to_have_text("offline")
        expect(page.locator("#daemon-heartbeat")).to_contain_text("no heartbeat yet")
        expect(page.locator("#isolation-layers")).to_have_text("not reported")
        expect(page.locator("#privacy-policy")).to_have_text("no privacy policy configured")

        heartbeat = NodeHeartbeat(state_dir)
        heartbeat.beat(["landlock: files of the job only", "network namespace: no network"])
        page.reload()
        expect(page.locator("#daemon-state")).to_have_text("online")
        expect(page.locator("#daemon-heartbeat")).to_contain_text("last heartbeat 20")
        expect(page.locator("#isolation-layers li")).to_have_text(
            ["landlock: files of the job only", "network namespace: no network"]
        )

        heartbeat.stopped()
        page.reload()
        expect(page.locator("#daemon-state")).to_have_text("offline")
        expect(page.locator("#daemon-heartbeat")).to_contain_text("(stopped)")
        assert console_errors == []
    finally:
        gui.stop()


def test_dashboard_shows_the_privacy_policy_and_each_researchers_spent_epsilon(
    tmp_path: Path, page: Page, console_errors: ConsoleErrors
) -> None:
    state_dir = tmp_path / "state"
    config = write_node_config(state_dir, tmp_path / "data")
    with config.open("a") as toml:
        toml.write("[privacy]\nrequire_secure_aggregation = true\nepsilon_budget = 8.0\n")
    ledger = PrivacyLedger.in_state_dir(state_dir)
    ledger.record("alice", "ds-1", "exp-1", 0, PrivacyEvent(1.0))
    ledger.close()
    add_user(config, "victor", "viewer", PASSWORDS["victor"], tmp_path)
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    try:
        sign_in(page, gui.url, "victor")
        expect(page.locator("#privacy-policy li")).to_have_text(
            [
                "secure aggregation required",
                "epsilon budget 8 per researcher and dataset (delta 1e-05)",
            ]
        )
        expect(page.locator("#privacy-spent tbody tr")).to_have_text(
            [re.compile(r"alice\s*ds-1\s*4.73\s*8.0\s*1\s*1")]
        )
    finally:
        gui.stop()
