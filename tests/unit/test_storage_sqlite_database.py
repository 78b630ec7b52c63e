"""The node database file: WAL, busy timeout, versioned schema, transactions, threads."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from fedward.errors import ConfigError, StorageError
from fedward.storage.sqlite_database import SqliteDatabase
from fedward.storage.sqlite_schema import SCHEMA_VERSION, migrate, schema_version


def test_new_database_is_created_owner_only_in_wal_mode_at_current_version(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "state" / "node.sqlite3")
    try:
        assert stat.S_IMODE(database.path.stat().st_mode) == 0o600
        with database.read() as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
            assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert schema_version(connection) == SCHEMA_VERSION
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        assert {
            "schema_version",
            "datasets",
            "dataset_tags",
            "plans",
            "jobs",
            "audit_events",
        } <= tables
    finally:
        database.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    first = SqliteDatabase(path)
    with first.write() as connection:
        connection.execute(
            "INSERT INTO audit_events (at, kind, actor) VALUES (1.0, 'test', 'someone')"
        )
    first.close()
    second = SqliteDatabase(path)
    with second.read() as connection:
        assert connection.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == 1
        assert connection.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    second.close()


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    with database.write() as connection:
        assert migrate(connection) == SCHEMA_VERSION
        assert schema_version(connection) == SCHEMA_VERSION
    database.close()


def test_database_from_a_newer_fedward_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    SqliteDatabase(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    connection.close()
    with pytest.raises(ConfigError, match="newer"):
        SqliteDatabase(path)


def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot create the node database"):
        SqliteDatabase(blocker / "node.sqlite3")


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    with pytest.raises(RuntimeError), database.write() as connection:
        connection.execute("INSERT INTO audit_events (at, kind, actor) VALUES (1.0, 'a', 'b')")
        raise RuntimeError("boom")
    with database.read() as connection:
        assert connection.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == 0
    database.close()


def test_sql_errors_become_storage_errors(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    with pytest.raises(StorageError), database.write() as connection:
        connection.execute("INSERT INTO no_such_table VALUES (1)")
    with pytest.raises(StorageError), database.read() as connection:
        connection.execute("SELECT * FROM no_such_table")
    database.close()


def test_each_thread_gets_its_own_connection_and_no_write_is_lost(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    seen: dict[int, set[int]] = {}
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for step in range(25):
                with database.write() as connection:
                    seen.setdefault(index, set()).add(id(connection))
                    connection.execute(
                        "INSERT INTO audit_events (at, kind, actor) VALUES (?, 'w', ?)",
                        (float(step), f"thread-{index}"),
                    )
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(len(connections) == 1 for connections in seen.values())  # one per thread
    with database.read() as connection:
        assert connection.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == 100
    database.close()


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "node.sqlite3")

    def read_once() -> None:
        with database.read() as connection:
            connection.execute("SELECT 1")

    for _ in range(20):
        thread = threading.Thread(target=read_once)
        thread.start()
        thread.join()
    read_once()
    assert len(database._connections) <= 2  # this thread's, and at most the last one's
    database.close()


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    with database.write() as connection:
        connection.execute("INSERT INTO audit_events (at, kind, actor) VALUES (1.0, 'p', 'parent')")

    def child() -> None:
        with database.write() as connection:
            connection.execute(
                "INSERT INTO audit_events (at, kind, actor) VALUES (2.0, 'c', 'child')"
            )

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    with database.read() as connection:
        actors = [row[0] for row in connection.execute("SELECT actor FROM audit_events")]
    assert actors == ["parent", "child"]
    database.close()


def _open_at_once(path: Path, start: threading.Barrier, errors: multiprocessing.Queue) -> None:
    try:
        start.wait(timeout=30)
        database = SqliteDatabase(path)
        database.close()
        errors.put("")
    except Exception as exc:  # reported to the test
        errors.put(repr(exc))


def test_processes_opening_a_fresh_database_at_once_all_get_it(tmp_path: Path) -> None:
    # The node and the GUI open a new node database together on a Docker first start;
    # turning it to WAL made all but one fail "database is locked" (seen in 1 of 3 tries).
    context = multiprocessing.get_context("fork")
    for attempt in range(20):
        path = tmp_path / f"node-{attempt}.sqlite3"
        start, errors = context.Barrier(3), context.Queue()
        openers = [
            context.Process(target=_open_at_once, args=(path, start, errors)) for _ in range(3)
        ]
        for process in openers:
            process.start()
        outcomes = [errors.get(timeout=60) for _ in openers]
        for process in openers:
            process.join(timeout=60)
        assert outcomes == ["", "", ""], f"attempt {attempt}: {outcomes}"
