"""An upload server that answers one byte a second must not hold the dashboard (or the GUI's
threads): the reachability check has one deadline for the whole exchange, not one per read.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fedward.gui.connectivity import CHECK_DEADLINE_S

from ..waiting import eventually
from .gui_process import (
    PASSWORDS,
    GuiProcess,
    add_user,
    client_from,
    sign_in,
    write_node_config,
)

# The deadline, and what a loaded 2-core machine adds to render the page around it.
PAGE_BOUND_S = CHECK_DEADLINE_S + 5.0


class DrippingServer:
    """Accepts HTTP connections and answers ``HTTP/1.1 200 OK...`` one byte a second."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=100)
        self.port = self.listener.getsockname()[1]
        self.open_connections = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with self._lock:
            self.open_connections += 1
        try:
            with connection:
                connection.recv(4096)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 3600:
                    connection.sendall(bytes([byte]))
                    time.sleep(1.0)
        except OSError:
            pass  # the GUI hung up: what it should do at its deadline
        finally:
            with self._lock:
                self.open_connections -= 1

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def dripping_server() -> Iterator[DrippingServer]:
    server = DrippingServer()
    try:
        yield server
    finally:
        server.close()


def test_a_dripping_upload_server_neither_holds_the_dashboard_nor_its_threads(
    tmp_path: Path, dripping_server: DrippingServer
) -> None:
    config = write_node_config(
        tmp_path / "state",
        tmp_path / "data",
        uploads_url=f"http://127.0.0.1:{dripping_server.port}",
    )
    add_user(config, "victor", "viewer", PASSWORDS["victor"], tmp_path)
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    try:
        with client_from(gui, "127.0.0.1", timeout_s=60) as client:
            assert sign_in(client, "victor", PASSWORDS["victor"]).status_code == 303
            started = time.monotonic()
            dashboard = client.get("/")
            elapsed = time.monotonic() - started
            assert dashboard.status_code == 200
            assert elapsed < PAGE_BOUND_S, f"the dashboard took {elapsed:.1f} s"
            row = dashboard.text[dashboard.text.index("upload server") :]
            assert "unreachable" in row[:600]
            assert "no answer within" in row[:600]

            def view(_: int) -> float:
                started = time.monotonic()
                assert client.get("/").status_code == 200
                return time.monotonic() - started

            # A viewer's auto-reloading tabs: 20 views at once still each answer in time.
            with ThreadPoolExecutor(max_workers=20) as pool:
                slowest = max(pool.map(view, range(20)))
            assert slowest < 2 * PAGE_BOUND_S, f"the slowest view took {slowest:.1f} s"
            assert client.get("/login").status_code in (200, 303)
        # Each check hung up at its deadline: no GUI thread still reads the drip.
        assert eventually(lambda: dripping_server.open_connections == 0, timeout_s=15), (
            f"{dripping_server.open_connections} connections still open"
        )
    finally:
        gui.stop()
