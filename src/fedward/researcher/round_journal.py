"""The journal of a round in progress: what a resumed experiment needs to finish that
round exactly as the uninterrupted run would have.

A checkpoint holds the experiment between rounds. A researcher killed *inside* a round
has already asked nodes to train (they go on), may have received some answers, may have
given up on late nodes. The journal records those facts as they happen, so that the
resumed round asks the same nodes with the same inputs (each node's repeat of the
request re-attaches to its job: ``fedward.node.round_jobs``), keeps the answers and
the verdicts (late) it already had, and asks again only the nodes whose answer it had
not received. Whatever the nodes were still computing must then arrive: a resumed round
that cannot get it fails loudly instead of finishing with fewer nodes.

File: ``experiments/<experiment id>/round-NNNN.journal`` (NNNN: the checkpoint this round
will write), JSON lines, each written and fsynced before the researcher acts on it::

    {"start": {"round_index": 2, "selected": [...], "offline": [...], "params_blob": "..."}}
    {"node_id": "node1", "reply": {... the node's TrainReply or ErrorReply ...}}
    {"node_id": "node2", "late": true}

A line torn by a crash is ignored (its fact is then learnt again). The journal is removed
once the round's checkpoint is saved, or when the round fails as an uninterrupted run
would have (a retry is then a fresh round).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from fedward.core.messages import ErrorReply, TrainReply
from fedward.errors import ProtocolError, RoundNotResumable, ValidationError
from fedward.protocol.codec import decode_reply, encode
from fedward.researcher.checkpoint import round_dirs
from fedward.researcher.history import NodeRound

Answer = TrainReply | ErrorReply


@dataclass(frozen=True)
class RoundStart:
    round_index: int
    selected: tuple[str, ...]
    offline: tuple[str, ...]
    params_blob: str


def journal_path(experiment_dir: Path, round_index: int) -> Path:
    """The journal of round ``round_index`` (0-based), next to the checkpoints."""
    return experiment_dir / f"round-{round_index + 1:04d}.journal"


@dataclass
class RoundJournal:
    path: Path
    start: RoundStart | None = None
    answers: dict[str, Answer] = field(default_factory=dict)
    late: set[str] = field(default_factory=set)
    #: True when the journal was found on disk: this round is being resumed.
    resumed: bool = False
    #: Called before the round's start is recorded: the checkpoint of the round before
    #: must be complete first (``checkpoint_saver``), or a crash could leave this journal
    #: without the checkpoint it continues from.
    barrier: Callable[[], None] = field(default=lambda: None, repr=False)

    @classmethod
    def open(cls, path: Path) -> RoundJournal:
        """The journal at ``path``: what an interrupted attempt recorded, or a new one."""
        journal = cls(path)
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return journal
        for line in lines:
            journal._replay_line(line)
        journal.resumed = journal.start is not None
        return journal

    @property
    def settled(self) -> set[str]:
        """Nodes whose part in the round is decided: not asked again."""
        return set(self.answers) | self.late

    @property
    def failed(self) -> set[str]:
        """Nodes the round goes on without, as it would have: they failed or were late."""
        return {n for n, a in self.answers.items() if isinstance(a, ErrorReply)} | self.late

    def check_reachable(self, selected: Sequence[str], offline: Iterable[str]) -> None:
        """``RoundNotResumable`` at once, not at the deadline, when a node whose update
        is still due is known to be offline."""
        gone = sorted((set(selected) - self.settled) & set(offline))
        if gone:
            raise self._not_resumable(f"offline: {', '.join(gone)}")

    def check_delivered(
        self, selected: Sequence[str], results: Mapping[str, NodeRound], failed: set[str]
    ) -> None:
        """``RoundNotResumable`` unless every node not in ``failed`` (the journal's
        failures before this attempt) delivered an update."""
        lost = [n for n in selected if results[n].status != "ok" and n not in failed]
        if lost:
            details = "; ".join(f"{n}: {results[n].status} {results[n].error}" for n in lost)
            raise self._not_resumable(details)

    def _not_resumable(self, details: str) -> RoundNotResumable:
        index = self.start.round_index if self.start is not None else 0
        return RoundNotResumable(
            f"round {index + 1} was interrupted while nodes trained; finishing it as the "
            "uninterrupted run would have needs the update each of them was computing, "
            f"and not every one can be had ({details})",
            hint=f"start the missing node(s) and resume again, or delete {self.path} to "
            "run the round afresh (its result may then differ from an uninterrupted run)",
        )

    def begin(self, start: RoundStart) -> None:
        """Record the round's start; on a resumed round, check it starts the same way."""
        self.barrier()
        if self.start is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)
            self.start = start
            self._append({"start": _start_json(start)})
            return
        if self.start != start:
            what = "nodes" if self.start.selected != start.selected else "parameters"
            raise ValidationError(
                f"round {start.round_index + 1} was interrupted, and resuming it now would "
                f"use other {what} than it started with",
                hint=f"resume with the same settings, or delete {self.path} to run the round "
                "afresh (the result may then differ from an uninterrupted run)",
            )

    def record_answer(self, node_id: str, reply: Answer) -> None:
        self.answers[node_id] = reply
        self._append({"node_id": node_id, "reply": json.loads(encode(reply))})

    def record_late(self, node_id: str) -> None:
        self.late.add(node_id)
        self._append({"node_id": node_id, "late": True})

    @property
    def updates_dir(self) -> Path:
        """Where the round keeps the updates it downloaded until its checkpoint is
        complete: a resumed round folds them again from here, whatever the upload server
        deleted meanwhile (it drops a blob soon after its readers fetched it)."""
        return self.path.with_suffix(".updates")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.updates_dir, ignore_errors=True)

    def _append(self, entry: dict[str, Any]) -> None:
        with self.path.open("ab") as handle:
            handle.write(json.dumps(entry, separators=(",", ":")).encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _replay_line(self, line: bytes) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            return  # torn by the crash
        if not isinstance(entry, dict):
            return
        if "start" in entry:
            self.start = _start_from_json(entry["start"], self.path)
        elif entry.get("late") is True:
            self.late.add(str(entry["node_id"]))
        elif "reply" in entry:
            try:
                reply = decode_reply(json.dumps(entry["reply"]).encode("utf-8"))
            except ProtocolError:
                return  # not a reply this version can read: asked again
            if isinstance(reply, TrainReply | ErrorReply):
                self.answers[str(entry["node_id"])] = reply


def remove_stale_journals(experiment_dir: Path, round_index: int) -> None:
    """Journals of rounds before ``round_index`` whose checkpoint is complete: it was saved
    before the researcher could remove them. A journal whose checkpoint is still being
    written (``checkpoint_saver``) stays: that save removes it when it is done."""
    saved = [int(p.name.removeprefix("round-")) for p in round_dirs(experiment_dir)]
    newest = min(max(saved, default=0), round_index)
    for path in [*experiment_dir.glob("round-*.journal"), *experiment_dir.glob("round-*.updates")]:
        number = path.name.removeprefix("round-").removesuffix(path.suffix)
        if number.isdigit() and int(number) <= newest:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _start_json(start: RoundStart) -> dict[str, Any]:
    return {
        "round_index": start.round_index,
        "selected": list(start.selected),
        "offline": list(start.offline),
        "params_blob": start.params_blob,
    }


def _start_from_json(data: Any, path: Path) -> RoundStart:
    try:
        return msgspec.convert(data, RoundStart)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"round journal {path} is not readable: {exc}") from exc
