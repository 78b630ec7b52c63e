"""The history as it goes into every checkpoint: each round's record encoded once.

A checkpoint's ``state.json`` holds the whole history, and one is saved after every round
on the round's thread: encoding (and copying) every record each time made a checkpoint
cost O(rounds), an experiment O(rounds^2) (1000 rounds of 10 nodes: ~0.8 s a round).
``HistoryLog`` keeps each record as JSON text, encoded the first time a checkpoint
includes it, and ``dumps_state`` splices those texts into the document it writes: the
bytes are those ``json.dumps(document, indent=1)`` wrote for the same history before,
so old and new checkpoints read the same way.

A record is final once its round's checkpoint is saved: ``Experiment.run_once`` writes
the epsilons into it (``ExperimentPrivacy.account``) before. The log trusts that; it
notices a history list replaced, shortened, or whose last encoded record was swapped
(then it encodes the whole list again), not a record changed in place afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from fedward.researcher.history import RoundRecord

_INDENT = 1  # json.dumps(..., indent=1): the format state.json has always been written in
#: A history record sits two levels in: the document, then its "history" list.
_RECORD_PREFIX = "\n" + " " * (2 * _INDENT)


def encode_record(record: RoundRecord) -> str:
    """A record's JSON as ``json.dumps`` writes it inside ``state.json``'s history list."""
    return json.dumps(record.to_json(), indent=_INDENT).replace("\n", _RECORD_PREFIX)


@dataclass(frozen=True)
class EncodedList:
    """The first ``count`` texts of ``items``: a list already encoded, for ``dumps_state``.
    ``items`` only grows (``HistoryLog``), so this stays the history of its checkpoint
    while the next rounds append to it."""

    items: list[str]
    count: int

    def json_text(self) -> str:
        """The list as ``json.dumps(document, indent=1)`` writes a top-level value."""
        if self.count == 0:
            return "[]"
        joined = ("," + _RECORD_PREFIX).join(islice(self.items, self.count))
        return "[" + _RECORD_PREFIX + joined + "\n" + " " * _INDENT + "]"


class HistoryLog:
    """Each record of an experiment's history as JSON text, encoded once."""

    def __init__(self) -> None:
        self._history: Sequence[RoundRecord] | None = None  # the list the texts are of
        self._last: RoundRecord | None = None  # its last record encoded
        self._items: list[str] = []

    def sync(self, history: Sequence[RoundRecord]) -> EncodedList:
        """The history as encoded JSON, encoding only the records not seen before."""
        seen = len(self._items)
        if (
            history is not self._history
            or len(history) < seen
            or (seen and history[seen - 1] is not self._last)
        ):
            # A new list (a resumed experiment) or one changed behind our back: start again,
            # in a new list, since earlier snapshots may still be being written.
            self._history, self._items, seen = history, [], 0
        if len(history) > seen:
            new = history[seen:]
            self._items.extend(encode_record(record) for record in new)
            self._last = new[-1]
        return EncodedList(self._items, len(self._items))


def dumps_state(document: Mapping[str, Any]) -> str:
    """``json.dumps(document, indent=1)``, but an ``EncodedList`` value is spliced in as
    its text (the history, without encoding it again)."""
    if not document:
        return "{}"
    margin = "\n" + " " * _INDENT
    parts = []
    for key, value in document.items():
        if isinstance(value, EncodedList):
            text = value.json_text()
        else:  # a top-level value: its lines one level in
            text = json.dumps(value, indent=_INDENT).replace("\n", margin)
        parts.append(f"{json.dumps(key)}: {text}")
    return "{" + margin + ("," + margin).join(parts) + "\n}"
