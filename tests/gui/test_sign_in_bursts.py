"""Attacks on the sign-in throttle through a real GUI process over loopback HTTP.

A burst of parallel guesses must get no more password checks than the same guesses one
after the other; a burst must not run argon2 (64 MiB each) more than a few at a time; and
user names that cannot be accounts (a megabyte long, say) must neither be checked nor pin
memory in the throttle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fedward.gui.login_throttle import ThrottlePolicy
from fedward.node.services import open_node_services

from .gui_process import (
    PASSWORDS,
    GuiProcess,
    add_user,
    client_from,
    hidden,
    sign_in,
    write_node_config,
)

# The policy's allowance for one (user, address) pair: 3 free failures, and the 4th
# attempt is still checked (it is the failure that starts the first delay).
CHECKS_BEFORE_DELAY = ThrottlePolicy().free_failures_per_user_and_address + 1
ARGON2_MIB = 64  # argon2-cffi's default memory cost, per verification at once


@pytest.fixture
def running_gui(tmp_path: Path) -> Iterator[GuiProcess]:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    for username in ("alice", "victor"):
        add_user(config, username, "admin", PASSWORDS[username], tmp_path)
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    try:
        yield gui
    finally:
        gui.stop()


def security_log(gui: GuiProcess) -> Counter[str]:
    services = open_node_services(gui.config.parent / "node.sqlite3", None)
    try:
        return Counter(event.kind for event in services.audit.list_events(limit=10_000))
    finally:
        services.close()


def gui_memory_kib(gui: GuiProcess, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of the GUI process, from /proc."""
    assert gui.process is not None
    for line in Path(f"/proc/{gui.process.pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{gui.process.pid}/status")


def post_login(client: httpx.Client, token: str, username: str, password: str) -> httpx.Response:
    """A sign-in with a login token fetched once, as a script sends a burst (each answer
    sets a new token in the client's jar; the header sent here wins over the jar)."""
    return client.post(
        "/login",
        data={"login_token": token, "username": username, "password": password, "next": "/"},
        headers={"Cookie": f"fedward_login={token}"},
    )


def test_parallel_wrong_passwords_get_no_more_checks_than_sequential_ones(
    running_gui: GuiProcess,
) -> None:
    with client_from(running_gui, "127.0.0.2", timeout_s=120) as attacker:
        token = hidden(attacker.get("/login"), "login_token")
        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(
                pool.map(
                    lambda n: post_login(attacker, token, "alice", f"wrong-guess-{n}"),
                    range(20),
                )
            )
        answers = Counter(reply.status_code for reply in replies)
        assert set(answers) <= {401, 429}, answers
        assert answers[401] <= CHECKS_BEFORE_DELAY, answers
        throttled = [reply for reply in replies if reply.status_code == 429]
        assert all("Try again in" in reply.text for reply in throttled)
        assert all(int(reply.headers["retry-after"]) > 0 for reply in throttled)
        # Now locked: even the right password is refused without being checked.
        assert post_login(attacker, token, "alice", PASSWORDS["alice"]).status_code == 429
    log = security_log(running_gui)
    assert log["login_failed"] <= CHECKS_BEFORE_DELAY, log
    assert log["login"] == 0
    with client_from(running_gui, "127.0.0.3") as alice:  # the GUI still answers
        assert sign_in(alice, "alice", PASSWORDS["alice"]).status_code == 303


def test_a_burst_over_many_names_and_addresses_runs_few_argon2_checks_at_once(
    running_gui: GuiProcess,
) -> None:
    with client_from(running_gui, "127.0.0.1") as warm_up:
        assert sign_in(warm_up, "victor", PASSWORDS["victor"]).status_code == 303
    peak_before_kib = gui_memory_kib(running_gui, "VmHWM")

    def guess(n: int) -> int:
        with client_from(running_gui, f"127.0.1.{n % 8 + 1}", timeout_s=120) as client:
            token = hidden(client.get("/login"), "login_token")
            return post_login(client, token, f"user{n}", "wrong-guess").status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = Counter(pool.map(guess, range(40)))
    assert set(answers) <= {401, 429}, answers
    growth_mib = (gui_memory_kib(running_gui, "VmHWM") - peak_before_kib) / 1024
    # Unbounded, 40 parallel checks reached 2.4 GiB; a few slots stay within a few hundred.
    assert growth_mib < 4 * ARGON2_MIB, f"peak RSS grew by {growth_mib:.0f} MiB"
    with client_from(running_gui, "127.0.0.1") as victor:
        assert sign_in(victor, "victor", PASSWORDS["victor"]).status_code == 303


def test_user_names_that_cannot_be_accounts_are_refused_unchecked_and_pin_no_memory(
    running_gui: GuiProcess,
) -> None:
    with client_from(running_gui, "127.0.0.1") as warm_up:
        assert sign_in(warm_up, "victor", PASSWORDS["victor"]).status_code == 303
    rss_before_kib = gui_memory_kib(running_gui, "VmRSS")
    answers: Counter[int] = Counter()
    for host in range(2, 6):
        with client_from(running_gui, f"127.0.2.{host}", timeout_s=60) as client:
            token = hidden(client.get("/login"), "login_token")
            for n in range(20):
                name = f"{host}-{n:04d}-" + "a" * 1_000_000
                answers[post_login(client, token, name, "x").status_code] += 1
    growth_mib = (gui_memory_kib(running_gui, "VmRSS") - rss_before_kib) / 1024
    # 80 one-megabyte names kept for an hour were 80 MiB; none is kept now.
    assert growth_mib < 20, f"RSS grew by {growth_mib:.0f} MiB"
    assert set(answers) <= {401, 429}, answers
    assert answers[429] > 0  # names that cannot be accounts are throttled like any other
    log = security_log(running_gui)
    assert log["login_failed"] + log["login_throttled"] == 80, log
    with client_from(running_gui, "127.0.0.1") as victor:
        assert sign_in(victor, "victor", PASSWORDS["victor"]).status_code == 303


def test_parallel_guesses_of_the_current_password_are_throttled_too(
    running_gui: GuiProcess,
) -> None:
    with client_from(running_gui, "127.0.0.4", timeout_s=120) as client:
        assert sign_in(client, "victor", PASSWORDS["victor"]).status_code == 303
        token = hidden(client.get("/account"), "csrf_token")

        def change(current: str) -> httpx.Response:
            return client.post(
                "/account/password",
                data={
                    "csrf_token": token,
                    "current_password": current,
                    "password": "lilac-quarry-bicycle-71",
                    "password_again": "lilac-quarry-bicycle-71",
                },
            )

        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(lambda n: change(f"wrong-guess-{n}"), range(20)))
        answers = Counter(reply.status_code for reply in replies)
        assert set(answers) <= {303, 429}, answers
        assert answers[303] <= CHECKS_BEFORE_DELAY, answers
        assert change(PASSWORDS["victor"]).status_code == 429
    log = security_log(running_gui)
    assert log["password_change_failed"] <= CHECKS_BEFORE_DELAY, log
    assert log["password_changed"] == 0
