"""One SQLite file shared by several processes (daemon, CLI, GUI), possibly all at once.

The plumbing under the node database (:mod:`fedward.storage.sqlite_database`) and the
GUI's account database (:mod:`fedward.gui.account_database`). It sits outside
``fedward.storage`` so that the GUI can have its own file without any access to the
node's stores; it imports nothing of ours but :mod:`fedward.errors`.

Why it is built this way:

- WAL journal: readers never block the writer and the writer never blocks readers, so a
  GUI page listing datasets does not stall a training job recording its end.
- ``busy_timeout``: when two processes want to write at the same moment, the second
  waits for the lock instead of failing with "database is locked".
- Writes start with ``BEGIN IMMEDIATE``: the write lock is taken before the first read of
  the transaction, so a check-then-write (tag conflicts, "already approved") cannot
  interleave with another process doing the same. Transactions stay short: no I/O
  other than SQL happens inside them.
- One connection per thread (sqlite3 connections are not meant to be shared between
  threads) and per process: a connection inherited through ``fork`` is abandoned, never
  used, because its locks belong to the parent.
- The file is created owner-only (0600): it holds dataset paths, audit entries or
  password hashes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from fedward.errors import ConfigError, StorageError

BUSY_TIMEOUT_MS = 30_000
WAL_RETRY_S = 0.02


class SqliteFile:
    """Connections and transactions on one SQLite file; the schema is the subclass's."""

    def __init__(self, path: Path, *, what: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        """Create the file if needed; ``what`` names it in error messages."""
        self.path = Path(path)
        self._what = what
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._create_file()

    def _create_file(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.path.exists():
                return
            # O_EXCL: an existing file is never opened here. Closing any descriptor of a
            # file drops every POSIX lock this process holds on it, SQLite's included:
            # a second SqliteFile on a database the process already uses would silently
            # release the first one's WAL read locks (it then read stale snapshots).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except OSError as exc:
            if self.path.is_file():
                return  # created by another process just now
            raise ConfigError(
                f"cannot create the {self._what} {self.path}: {exc.strerror}",
                hint=f"check that {self.path.parent} is writable",
            ) from exc

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            # Forked child: the parent's connections are not ours to use, nor to close
            # (closing could checkpoint the parent's WAL); keep them referenced, untouched.
            self._inherited.extend(connection for _, connection in self._connections)
            self._local = threading.local()
            self._connections = []
            self._lock = threading.Lock()
            self._pid = os.getpid()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                # Threads come and go (request pools); their connections must not pile up.
                finished = [pair for pair in self._connections if not pair[0].is_alive()]
                self._connections = [p for p in self._connections if p[0].is_alive()]
                self._connections.append((threading.current_thread(), connection))
            for _, stale in finished:
                stale.close()
        return connection

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so transactions are
            # exactly as long as the ``with`` block and no longer.
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            self._use_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the {self._what} {self.path}: {exc}") from exc
        connection.row_factory = sqlite3.Row
        return connection

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Switch to WAL, waiting for the lock like any write. Turning a new file to WAL
        takes an exclusive lock; processes opening a fresh database at once (the node and
        the GUI on a first start) each hold a shared lock and want it, and SQLite answers
        all but one "database is locked" at once, without the busy timeout, rather than
        deadlock. Those try again."""
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(WAL_RETRY_S)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot start a write on {self.path}: {exc}") from exc
        try:
            yield connection
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(connection)
            raise StorageError(f"cannot write to {self.path}: {exc}") from exc
        except BaseException:
            _rollback(connection)
            raise

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same snapshot."""
        connection = self._connection()
        try:
            connection.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from exc
        try:
            yield connection
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from exc
        finally:
            _rollback(connection)

    def close(self) -> None:
        """Close every connection this process opened (any thread)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for _, connection in connections:
            connection.close()
        self._local = threading.local()


def _rollback(connection: sqlite3.Connection) -> None:
    # Also ends read transactions; a connection that is already broken has nothing to undo.
    with contextlib.suppress(sqlite3.Error):
        connection.execute("ROLLBACK")
