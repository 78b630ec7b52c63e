"""The node daemon's secure-aggregation rounds: sessions in progress and the adverts seen.

The daemon holds everything secret here; no job worker ever sees it. A session starts
when a train request that asks for secure aggregation has trained and its result passed
the checks (``secagg_handler.hold_update``): the checked update is encoded into the
ring and kept in the state folder (hidden from workers), fresh keys are made and
published on the node's own advert topic. Later requests of the researcher move the
session on; the last one (unmasking) ends it.

Adverts come straight from the broker, on topics only their node may write (ACL), so the
keys of the other nodes are theirs: the researcher relays only sealed shares, which it
can neither read nor forge. An advert is kept only when this node is in its cohort, and
only the latest few thousand are kept.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedward.core.messages import SecAggAdvert
from fedward.errors import FederationError, NotFound, ProtocolError
from fedward.privacy.secagg_participant import SecAggParticipant
from fedward.protocol import topics
from fedward.protocol.codec import decode_advert, encode_advert
from fedward.transport.channel import Channel

log = logging.getLogger("fedward.node")

MAX_ADVERTS = 4096
SESSION_TTL_S = 6 * 3600.0

#: (researcher id, experiment id, round index)
SessionKey = tuple[str, str, int]


@dataclass
class SecAggSession:
    participant: SecAggParticipant
    held: Path  # the encoded, unmasked update: deleted once masked
    vector_size: int
    opened_at: float = field(default_factory=time.monotonic)

    def discard(self) -> None:
        self.held.unlink(missing_ok=True)


class SecAggSessions:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._adverts: OrderedDict[tuple[str, str, int, str], SecAggAdvert] = OrderedDict()
        self._sessions: dict[SessionKey, SecAggSession] = {}
        self._node_id = ""
        self._channel: Channel | None = None
        self.folder: Path | None = None

    def attach(self, node_id: str, channel: Channel, folder: Path) -> None:
        """Listen to the adverts of the federation and publish ours on ``channel``; held
        updates go to ``folder`` (in the state folder, hidden from job workers), where
        those of a previous run, whose keys died with it, are deleted."""
        self._node_id = node_id
        self._channel = channel
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in folder.iterdir():
            if stale.is_file():
                stale.unlink(missing_ok=True)
        self.folder = folder
        channel.subscribe(topics.ADVERT_FILTER, self._on_advert)

    def _on_advert(self, topic: str, payload: bytes) -> None:
        try:
            researcher_id, node_id = topics.sender_of_advert(topic)
            advert = decode_advert(payload)
        except (ProtocolError, ValueError) as exc:
            log.warning("ignoring an invalid secure-aggregation advert on %s: %s", topic, exc)
            return
        if self._node_id not in advert.cohort or node_id not in advert.cohort:
            return
        key = (researcher_id, advert.experiment_id, advert.round_index, node_id)
        with self._changed:
            self._adverts[key] = advert
            self._adverts.move_to_end(key)
            while len(self._adverts) > MAX_ADVERTS:
                self._adverts.popitem(last=False)
            self._changed.notify_all()

    def publish(self, researcher_id: str, advert: SecAggAdvert) -> None:
        if self._channel is None:
            raise FederationError("the node is not connected to the broker")
        self._channel.publish(
            topics.advert_topic(researcher_id, self._node_id), encode_advert(advert)
        )

    def adverts(
        self, key: SessionKey, members: Sequence[str], timeout_s: float
    ) -> dict[str, SecAggAdvert]:
        """The adverts of ``members`` for the round ``key``, waiting up to ``timeout_s`` for
        late ones; FederationError naming the nodes whose advert never came."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = {m: self._adverts.get((*key, m)) for m in members}
                missing = sorted(m for m, a in found.items() if a is None)
                remaining = deadline - time.monotonic()
                if not missing:
                    return {m: a for m, a in found.items() if a is not None}
                if remaining <= 0:
                    raise FederationError(
                        f"no secure-aggregation keys from {', '.join(missing[:5])} reached this "
                        "node on their advert topics",
                        hint="only keys a node published itself are used",
                    )
                self._changed.wait(remaining)

    def open(self, key: SessionKey, session: SecAggSession) -> None:
        with self._changed:
            expired = [
                k
                for k, s in self._sessions.items()
                if time.monotonic() - s.opened_at > SESSION_TTL_S
            ]
            stale = [self._sessions.pop(k) for k in expired]
            previous = self._sessions.pop(key, None)
            self._sessions[key] = session
        for old in [*stale, *([previous] if previous else [])]:
            old.discard()

    def get(self, key: SessionKey) -> SecAggSession:
        with self._changed:
            session = self._sessions.get(key)
        if session is None:
            raise NotFound(
                f"no secure-aggregation round {key[2]} of experiment {key[1]} on this node",
                hint="the node may have restarted; it counts as dropped out of this round",
            )
        return session

    def close(self, key: SessionKey) -> None:
        with self._changed:
            session = self._sessions.pop(key, None)
        if session is not None:
            with contextlib.suppress(OSError):
                session.discard()

    def active(self) -> int:
        with self._changed:
            return len(self._sessions)
