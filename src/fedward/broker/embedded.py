"""A small MQTT 3.1.1 broker in Python, for machines without Mosquitto (the demo).

It reads the same rendered directory as Mosquitto (``mosquitto.conf``, ``passwords``,
``acl``) and enforces the same policy: no anonymous access, ``$7$`` password hashes,
the ACL checked on every publish and every delivery. It speaks MQTT 3.1.1 only
(the protocol ``MqttChannel`` uses): QoS 0 and 1 both ways, QoS 2 inbound, retained
messages, wills, keepalive, and a packet size limit.

Differences from Mosquitto, on purpose: MQTT 5 clients are refused (CONNACK 1); every
session is clean (fedward clients ask for that; others get "session present: 0" and
nothing kept while offline); subscriptions are granted at most QoS 1; a client id
held by another user is refused instead of taken over; retained messages are kept only
on node presence topics; and every client is held to the limits of
:mod:`fedward.broker.limits`.

Run it in a thread (:class:`EmbeddedBroker`) or in the foreground::

    python -m fedward.broker.embedded --config-dir DIR [--port N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from fedward.broker.acl import AclPolicy, parse_acl
from fedward.broker.admission import ConnectionSlots, PasswordChecks
from fedward.broker.client_session import ClientSession, subscription_matches
from fedward.broker.follow_files import follow_files
from fedward.broker.limits import (
    MAX_CONNECTIONS_PER_USERNAME,
    MAX_RETAINED_BYTES,
    RETAINED_TOPIC_FILTERS,
)
from fedward.broker.packets import ConnackCode, Connect
from fedward.broker.passwords import (
    DEFAULT_ITERATIONS,
    hash_password,
    parse_password_file,
    verify_password,
)
from fedward.broker.render import (
    MAX_QUEUED_BYTES,
    BrokerFiles,
    BrokerSettings,
    read_broker_settings,
)
from fedward.errors import ConfigError, FedwardError, TransportError

log = logging.getLogger(__name__)


@functools.cache
def _unknown_user_hash() -> str:
    """Checked for unknown usernames, so that refusing them takes as long as a wrong password."""
    return hash_password("not a password", iterations=DEFAULT_ITERATIONS)


def may_retain(topic: str, payload: bytes) -> bool:
    """Only where fedward's protocol retains, and small: retained messages outlive their
    sender, and every SUBSCRIBE scans them all."""
    return len(payload) <= MAX_RETAINED_BYTES and any(
        subscription_matches(topic_filter, topic) for topic_filter in RETAINED_TOPIC_FILTERS
    )


class BrokerCore:
    """Broker-wide state; touched only from the event loop's thread."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.max_queued_bytes = MAX_QUEUED_BYTES
        self.slots = ConnectionSlots(settings.max_connections)
        self.password_checks = PasswordChecks()
        self.sessions: dict[str, ClientSession] = {}
        self.retained: dict[str, tuple[bytes, int]] = {}
        self.hashes: dict[str, str] = {}
        self.policy = AclPolicy()
        self.load_security_files()

    def load_security_files(self) -> None:
        """(Re)read passwords and ACL; ConfigError leaves the old ones in force."""
        try:
            passwords = self.settings.password_file.read_text(encoding="utf-8")
            acl = self.settings.acl_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read broker password or ACL file: {exc}") from exc
        hashes, policy = parse_password_file(passwords), parse_acl(acl)
        previous, self.hashes, self.policy = self.hashes, hashes, policy
        # As Mosquitto does on reload: a connected peer whose password is gone or no
        # longer matches is disconnected, so a revocation takes effect now, not at the
        # peer's next connection. (A re-rendered file has new salts: check, do not guess.)
        for session in list(self.sessions.values()):
            if session.username not in hashes:
                self._disconnect_revoked(session)
            elif hashes[session.username] != previous.get(session.username):
                asyncio.get_running_loop().create_task(self._check_again(session))

    async def _check_again(self, session: ClientSession) -> None:
        encoded = self.hashes.get(session.username)
        password = (session.connect.password if session.connect else None) or ""
        valid = encoded is not None and await asyncio.get_running_loop().run_in_executor(
            None, verify_password, password, encoded
        )
        if not valid:
            self._disconnect_revoked(session)

    def _disconnect_revoked(self, session: ClientSession) -> None:
        log.info("client %r lost its credentials; disconnecting it", session.client_id)
        self.unregister(session, publish_will=True)
        session.kick()

    async def admit(self, session: ClientSession, connect: Connect) -> ConnackCode:
        username, password = connect.username or "", connect.password or ""
        encoded = self.hashes.get(username)
        checks = await self.password_checks.verify(
            session.address, password, encoded or _unknown_user_hash()
        )
        if checks is None:
            log.warning("too many password checks waiting; refusing %s for now", session.peer)
            return ConnackCode.SERVER_UNAVAILABLE
        if encoded is None or not checks:
            return ConnackCode.NOT_AUTHORIZED
        if not connect.client_id:
            if not connect.clean_session:  # MQTT 3.1.3-8: no id to resume a session by
                return ConnackCode.IDENTIFIER_REJECTED
            session.client_id = f"auto-{secrets.token_hex(8)}"  # MQTT 3.1.3-6
        holder = self.sessions.get(session.client_id)
        if holder is not None and holder.username != username:
            return ConnackCode.IDENTIFIER_REJECTED
        # Counted without the connection this one replaces: a peer reconnecting before we
        # noticed its old connection die must get in.
        held = sum(1 for s in self.sessions.values() if s.username == username and s is not holder)
        if held >= MAX_CONNECTIONS_PER_USERNAME:
            log.warning("user %r holds %d connections already; refusing another", username, held)
            return ConnackCode.SERVER_UNAVAILABLE
        if holder is not None:
            log.info("client %r connected again; closing its old connection", session.client_id)
            self.unregister(holder, publish_will=True)
            holder.kick()
        session.username = username
        self.sessions[session.client_id] = session
        return ConnackCode.ACCEPTED

    def unregister(self, session: ClientSession, *, publish_will: bool) -> None:
        if self.sessions.get(session.client_id) is not session:
            return  # already replaced by a newer connection, whose will it is now
        del self.sessions[session.client_id]
        will = session.connect.will if session.connect else None
        if publish_will and will is not None:
            log.info("publishing the will of client %r", session.client_id)
            self.publish_from(session, will.topic, will.payload, will.qos, will.retain)

    def publish_from(
        self, sender: ClientSession, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        """Route one message; silently dropped if the ACL or the size limit refuse it."""
        if not self.policy.may_write(sender.username, topic):
            log.info("denied publish by %r to %r", sender.username, topic)
            return
        if len(payload) > self.settings.message_size_limit:
            log.info("dropped a %d-byte message from %r", len(payload), sender.username)
            return
        if retain and payload and not may_retain(topic, payload):
            log.info("not retaining a message from %r on %r", sender.username, topic)
        elif retain and payload:
            self.retained[topic] = (payload, qos)
        elif retain:
            self.retained.pop(topic, None)
        for session in list(self.sessions.values()):
            granted = session.granted_qos(topic)
            if granted is not None and self.policy.may_read(session.username, topic):
                session.deliver(topic, payload, min(qos, granted), retain=False)

    def send_retained(self, session: ClientSession, topic_filter: str, granted: int) -> None:
        for topic, (payload, qos) in sorted(self.retained.items()):
            if subscription_matches(topic_filter, topic) and self.policy.may_read(
                session.username, topic
            ):
                session.deliver(topic, payload, min(qos, granted), retain=True)

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            session.kick()
        self.sessions.clear()


class EmbeddedBroker:
    """The embedded broker, serving from a background thread with its own event loop."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._core: BrokerCore | None = None
        self._loop_thread_id: int | None = None
        self._port = settings.port

    @classmethod
    def from_config_dir(cls, config_dir: Path, port: int | None = None) -> EmbeddedBroker:
        """Serve what ``config_dir/mosquitto.conf`` says, on ``port`` if given (0: any)."""
        settings = read_broker_settings(BrokerFiles.in_dir(config_dir).conf)
        return cls(settings if port is None else replace(settings, port=port))

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        """The bound port once started (useful when configured with port 0)."""
        return self._port

    def start(self, timeout_s: float = 10.0) -> None:
        """Serve in a daemon thread; returns once the port accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(on_ready=ready.set))
            except BaseException as exc:  # reported to start(), which raises it
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s) or failure:
            raise TransportError(
                f"embedded broker could not listen on {self.host}:{self.settings.port}: "
                f"{failure[0] if failure else 'timed out'}"
            ) from (failure[0] if failure else None)

    async def serve(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Serve until :meth:`stop` (or SIGTERM when run in the foreground)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._stopping = asyncio.Event()
        core = self._core = BrokerCore(self.settings)
        tasks: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            with contextlib.suppress(asyncio.CancelledError):  # only at stop()
                await ClientSession(core, reader, writer).run()

        try:
            server = await asyncio.start_server(accept, self.settings.host, self.settings.port)
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {self.host}:{self.settings.port}: {exc}"
            ) from exc
        self._port = server.sockets[0].getsockname()[1]
        log.info("embedded broker listening on %s:%d", self.host, self._port)
        on_ready()
        async with server:
            await self._stopping.wait()
            server.close()
            core.close_all()
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=2.0)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            core.password_checks.close()

    def stop(self) -> None:
        """Stop serving and drop every client; idempotent."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already finished
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def reload(self) -> None:
        """Re-read passwords and ACL (what SIGHUP does to Mosquitto); waits until done."""
        loop, core = self._loop, self._core
        if loop is None or core is None:
            raise TransportError("the embedded broker is not running")
        if threading.get_ident() == self._loop_thread_id:
            core.load_security_files()
            return
        future = asyncio.run_coroutine_threadsafe(_call(core.load_security_files), loop)
        future.result(timeout=10)


async def _call(function: Callable[[], None]) -> None:
    function()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedward.broker.embedded", description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True, help="rendered broker directory")
    parser.add_argument("--port", type=int, default=None, help="override the listener port")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        broker = EmbeddedBroker.from_config_dir(args.config_dir, args.port)
        asyncio.run(serve_in_foreground(broker))
    except FedwardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


async def serve_in_foreground(broker: EmbeddedBroker, follow: Sequence[Path] = ()) -> None:
    """Serve in this thread: SIGHUP reloads, and so does a change to a ``follow`` file;
    SIGTERM and SIGINT stop."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    def reload() -> None:
        try:
            broker.reload()
        except FedwardError as exc:
            log.error("reload failed, keeping the old passwords and ACL: %s", exc)

    def ready() -> None:
        loop.add_signal_handler(signal.SIGHUP, reload)
        loop.add_signal_handler(signal.SIGTERM, broker.stop)
        loop.add_signal_handler(signal.SIGINT, broker.stop)
        if follow:
            tasks.append(loop.create_task(follow_files(follow, reload)))
        print(f"listening on {broker.host}:{broker.port}", file=sys.stderr, flush=True)

    try:
        await broker.serve(on_ready=ready)
    finally:
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    sys.exit(main())
