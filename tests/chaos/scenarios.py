"""The chaos scenarios: each runs real experiments under faults and says what it saw.

Every scenario returns a ``Row``: what was expected, what was observed, and whether the
two agree. ``make chaos`` (``tests/chaos/run.py``) runs them at full size and prints the
table; ``test_chaos_slice.py`` runs them smaller, in ``make test``.

Waits poll with deadlines; the random points at which faults strike come from a seeded
generator, so a run injects the same faults at the same moments of the experiment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedward.core.messages import ScalarEvent
from fedward.demo.local_federation import LocalFederation
from fedward.errors import FederationError, StorageError, TransportError
from fedward.researcher.history import RoundRecord
from fedward.transport.http_blobs import HttpBlobStore
from tests.chaos import researcher_process
from tests.chaos.harness import (
    CountingFedAvg,
    chaos_federation,
    experiment,
    same_params,
    survivors_mean,
    wait_until,
)


@dataclass
class Row:
    scenario: str
    expected: str
    observed: str
    ok: bool
    note: str = ""

    @property
    def verdict(self) -> str:
        return "as expected" if self.ok else "NOT as expected"


class Observer:
    """Does nothing; scenarios override the events they act on."""

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        pass

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        pass

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        pass

    def round_finished(self, record: RoundRecord) -> None:
        pass

    def close(self) -> None:
        pass


def _lost_updates(history: list[RoundRecord]) -> int:
    return sum(len(record.nodes) - len(record.succeeded) for record in history)


# --- 1. the broker killed during rounds ------------------------------------------------------


class KillBrokerMidRound(Observer):
    """In each round of ``rounds``: once the requests are out, SIGKILL Mosquitto after a
    random moment of the round, and start it again (same port) after another."""

    def __init__(self, fed: LocalFederation, rounds: set[int], rng: random.Random) -> None:
        self.fed, self.rounds, self.rng = fed, rounds, rng
        self.kills = 0
        self.threads: list[threading.Thread] = []

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        if round_index not in self.rounds:
            return
        before, down = self.rng.uniform(0.0, 0.4), self.rng.uniform(0.2, 1.5)

        def strike() -> None:
            broker = self.fed.broker
            assert broker is not None
            time.sleep(before)
            broker.kill()  # type: ignore[attr-defined]
            self.kills += 1
            time.sleep(down)
            broker.start()

        thread = threading.Thread(target=strike, name="kill-broker")
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def broker_killed(workdir: Path, rounds: int = 10, kills: int = 3, seed: int = 1) -> Row:
    nodes = ["node1", "node2", "node3"]
    rng = random.Random(seed)
    strike_rounds = set(rng.sample(range(1, rounds), kills))  # after the first save
    with chaos_federation(workdir, nodes, seed=seed) as fed:
        aggregator = CountingFedAvg()
        killer = KillBrokerMidRound(fed, strike_rounds, rng)
        run = experiment(fed, rounds, aggregator=aggregator, observers=[killer], checkpoints=False)
        try:
            history = run.run()
        finally:
            killer.join()
    lost, twice = _lost_updates(history), aggregator.counted_twice()
    return Row(
        f"broker killed {kills}x during a {rounds}-round experiment",
        "completes; 0 updates lost; 0 counted twice",
        f"{len(history)}/{rounds} rounds; {killer.kills} kills; {lost} lost; {twice} twice",
        len(history) == rounds and killer.kills == kills and lost == 0 and twice == 0,
    )


# --- 2. duplicated and reordered MQTT messages ----------------------------------------------


def duplicated_and_reordered(
    workdir: Path, rounds: int = 10, rate: float = 0.1, seed: int = 2
) -> Row:
    nodes = ["node1", "node2", "node3"]
    with chaos_federation(workdir, nodes, seed=seed) as fed:
        clean = experiment(fed, rounds, checkpoints=False)
        clean.run()
        proxy = fed.proxies["broker"]  # type: ignore[attr-defined]
        proxy.faults.duplicate = rate
        proxy.faults.reorder = rate
        before = (proxy.stats.duplicated, proxy.stats.reordered, proxy.stats.publishes)
        aggregator = CountingFedAvg()
        faulty = experiment(fed, rounds, aggregator=aggregator, checkpoints=False)
        history = faulty.run()
        duplicated = proxy.stats.duplicated - before[0]
        reordered = proxy.stats.reordered - before[1]
        publishes = proxy.stats.publishes - before[2]
    identical = same_params(faulty.aggregated_params(), clean.aggregated_params())
    return Row(
        f"{rate:.0%} of MQTT messages duplicated and reordered",
        "final model bit-identical to the fault-free run (same seed)",
        f"{publishes} publishes, {duplicated} duplicated, {reordered} overtaken; "
        f"{_lost_updates(history)} lost, {aggregator.counted_twice()} twice; "
        f"bit-identical: {'yes' if identical else 'NO'}",
        identical and len(history) == rounds,
    )


# --- 3. a node killed in every round ----------------------------------------------------------


class KillOneNodePerRound(Observer):
    """Round r's victim is ``nodes[r % len(nodes)]``: paused (SIGSTOP) as round r-1 ends,
    so it cannot answer round r's request; SIGKILLed once another node's update of round
    r is in (so the request certainly went out); restarted after round r ended."""

    def __init__(self, fed: LocalFederation, nodes: Sequence[str]) -> None:
        self.fed, self.nodes = fed, list(nodes)
        self.victims: dict[int, str] = {}

    def victim(self, round_index: int) -> str:
        return self.nodes[round_index % len(self.nodes)]

    def _pause(self, node_id: str) -> None:
        process = self.fed.nodes[node_id].process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        if round_index == 0:
            self._pause(self.victim(0))

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        victim = self.victim(round_index)
        if node_id != victim and status == "done" and round_index not in self.victims:
            self.victims[round_index] = victim
            self.fed.stop_node(victim, kill=True)

    def round_finished(self, record: RoundRecord) -> None:
        victim = self.victims[record.round_index]
        self.fed.start_node(victim)
        self.fed.wait_online([victim])
        self._pause(self.victim(record.round_index + 1))

    def close(self) -> None:
        # The next round's victim was paused for a round that will not come.
        for node in self.fed.nodes.values():
            if node.process is not None and node.process.poll() is None:
                os.kill(node.process.pid, signal.SIGCONT)


def node_killed_each_round(workdir: Path, rounds: int = 10, seed: int = 3) -> Row:
    nodes = [f"node{i}" for i in range(1, 6)]
    with chaos_federation(workdir, nodes, seed=seed, proxied=False) as fed:
        aggregator = CountingFedAvg()
        killer = KillOneNodePerRound(fed, nodes)
        run = experiment(
            fed,
            rounds,
            aggregator=aggregator,
            min_replies=len(nodes) - 1,
            observers=[killer],
            checkpoints=False,
        )
        history = run.run()
    problems = []
    for record in history:
        r = record.round_index
        survivors = sorted(aggregator.updates[r])
        expected = sorted(set(nodes) - {killer.victims[r]})
        if survivors != expected or record.succeeded != expected:
            problems.append(f"round {r}: aggregated {survivors}, expected {expected}")
            continue
        mean = survivors_mean(aggregator.updates[r])
        result = aggregator.results[r]
        if not all(np.allclose(result[n], mean[n], rtol=1e-12, atol=0) for n in mean):
            problems.append(f"round {r}: the aggregate is not the survivors' mean")
    victims = len(set(killer.victims.values()))
    return Row(
        f"1 of 5 nodes killed in each of {rounds} rounds (a different one each time, restarted)",
        "completes; each round's aggregate = the aggregate of its survivors",
        f"{len(history)}/{rounds} rounds; {victims} different victims; "
        + ("; ".join(problems[:3]) if problems else "every aggregate = its 4 survivors' mean"),
        len(history) == rounds and not problems,
    )


# --- 4. the upload server killed mid-transfer -------------------------------------------------


def _blob_client(fed: LocalFederation, peer: str, retry_s: float = 60.0) -> HttpBlobStore:
    token = (fed.secrets_dir / f"{peer}.upload-token").read_text().strip()
    return HttpBlobStore(fed.client_uploads_url, token, timeout_s=30, retry_s=retry_s)


def _leftovers(fed: LocalFederation) -> list[Path]:
    incoming = fed.workdir / "uploads" / "data" / "incoming"
    return [p for p in incoming.iterdir()] if incoming.is_dir() else []


def uploads_killed(workdir: Path, size_mb: int = 16, seed: int = 4) -> Row:
    rng = np.random.default_rng(seed)
    data = rng.bytes(size_mb << 20)
    blob_id = hashlib.sha256(data).hexdigest()
    observed, ok = [], True
    with chaos_federation(workdir, ["node1"], seed=seed) as fed:
        proxy = fed.proxies["uploads"]  # type: ignore[attr-defined]
        proxy.faults.bytes_per_s = 8 << 20  # a transfer lasts long enough to be cut inside
        incoming = fed.workdir / "uploads" / "data" / "incoming"

        with _blob_client(fed, fed.researcher_id) as researcher:
            result: dict[str, object] = {}
            upload = threading.Thread(
                target=lambda: result.update(id=researcher.put_bytes(data, ["node1"]))
            )
            upload.start()
            wait_until(
                lambda: any(p.stat().st_size > (1 << 20) for p in incoming.glob("*.part")),
                "an upload in progress",
            )
            fed.restart_uploads(kill=True)
            upload.join(120)
            uploaded = result.get("id") == blob_id
            observed.append(
                f"upload killed mid-way: retried, stored {'whole' if uploaded else 'NOT'}"
            )
            ok &= uploaded

        with _blob_client(fed, "node1") as node:
            dest = workdir / "download" / "blob.bin"
            dest.parent.mkdir()
            result = {}
            seen = proxy.stats.bytes_down
            download = threading.Thread(
                target=lambda: result.update(path=node.get_file(blob_id, dest))
            )
            download.start()
            wait_until(lambda: proxy.stats.bytes_down - seen > (2 << 20), "a download in progress")
            fed.restart_uploads(kill=True)
            download.join(120)
            whole = dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == blob_id
            stray = [p.name for p in dest.parent.iterdir() if p != dest]
            observed.append(
                f"download killed mid-way: retried, {'hash checked' if whole else 'CORRUPT'}, "
                f"{len(stray)} partial file(s) on the client"
            )
            ok &= whole and not stray
        leftovers = _leftovers(fed)
        observed.append(f"{len(leftovers)} partial upload(s) left on the server")
        ok &= not leftovers
        # and the federation goes on over the restarted server
        history = experiment(fed, 1, checkpoints=False).run()
        ok &= len(history) == 1
    return Row(
        "upload server killed during an upload and during a download",
        "retries; no corrupt blob read (hash checked); no partial file left",
        "; ".join(observed),
        ok,
    )


# --- 5. disk full --------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` mounted on ``path`` (root only), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """A file that takes every free byte of ``folder``'s file system."""
    filler = folder / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * (1 << 16))
            handle.flush()
    return filler


def _integrity(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def disk_full(workdir: Path, seed: int = 5) -> Row:
    observed, ok = [], True
    nodes = ["node1", "node2", "node3"]
    uploads_store = workdir / "uploads" / "data"
    node_state = workdir / "nodes" / "node1"
    with (
        small_filesystem(uploads_store, 32),
        small_filesystem(node_state, 32),
        chaos_federation(workdir, nodes, seed=seed, proxied=False) as fed,
    ):
        # The upload server's store fills up.
        stored = {}
        with _blob_client(fed, fed.researcher_id, retry_s=1.0) as researcher:
            stored["before"] = researcher.put_bytes(b"kept through it all" * 100, ["node1"])
            filler = fill(uploads_store)
            try:
                researcher.put_bytes(os.urandom(4 << 20), ["node1"])
                observed.append("upload to a full store ACCEPTED?")
                ok = False
            except TransportError as exc:
                clear = "out of space" in str(exc)
                observed.append(f"upload to a full store: {'clear error' if clear else exc}")
                ok &= clear
            ok &= not [p for p in (uploads_store / "incoming").iterdir()]
            filler.unlink()
            with _blob_client(fed, "node1") as node:
                ok &= node.get_bytes(stored["before"]) == b"kept through it all" * 100
            resumed = researcher.put_bytes(os.urandom(1 << 20), ["node1"])
            observed.append("uploads resume once space returns" if resumed else "")

        # A node's state folder fills up while the federation trains.
        run = experiment(fed, 3, min_replies=2, checkpoints=False)
        run.run_once()
        filler = fill(node_state)
        try:
            record = run.run_once()
            failure = record.nodes["node1"]
            observed.append(
                f"node with a full disk: round goes on without it ({failure.error_code}: "
                f"{failure.error[:60]})"
            )
            ok &= failure.status == "failed" and failure.error_code == StorageError.code
            # The node's paths stay on the node (its state folder is masked).
            ok &= "<node" in failure.error and "/nodes/" not in failure.error
        except FederationError as exc:
            observed.append(f"round failed: {exc}")
            ok = False
        alive = fed.nodes["node1"].process is not None and fed.nodes["node1"].process.poll() is None
        filler.unlink()
        integrity = _integrity(fed.nodes["node1"].config.database_path)
        record = run.run_once()
        resumed_node = "node1" in record.succeeded
        observed.append(
            f"node alive: {'yes' if alive else 'NO'}; SQLite integrity: {integrity}; "
            f"trains again once space returns: {'yes' if resumed_node else 'NO'}"
        )
        ok &= alive and integrity == "ok" and resumed_node
    return Row(
        "disk full on the upload server's store and on a node's state folder (tmpfs)",
        "clear errors; no corrupt SQLite; service resumes when space returns",
        "; ".join(observed),
        ok,
    )


# --- 6. the researcher killed at random points -------------------------------------------------


def _rounds_done(state: Path) -> int:
    folder = state / "experiments" / researcher_process.EXPERIMENT_ID
    # Checkpoints are round-NNNN; a round in progress also leaves round-NNNN.journal.
    rounds = folder.glob("round-*") if folder.is_dir() else []
    done = [int(p.name[6:]) for p in rounds if p.name[6:].isdigit()]
    return max(done, default=0)


def researcher_killed(workdir: Path, kills: int = 5, rounds: int = 20, seed: int = 6) -> Row:
    """The researcher's process is SIGKILLed ``kills`` times, each at a random point of a
    random round (after that round's checkpoint count is reached, a random fraction of a
    round later), and resumed each time from its latest checkpoint."""
    rng = random.Random(seed)
    nodes = ["node1", "node2", "node3"]
    strike_after = sorted(rng.sample(range(rounds - 1), kills))
    with chaos_federation(workdir, nodes, seed=seed, proxied=False) as fed:
        config = researcher_process.write_config(fed, workdir / "researcher.toml")
        clean = researcher_process.run(config, workdir / "clean", rounds, workdir / "clean.npz")
        if clean.returncode != 0:
            raise RuntimeError(f"the fault-free researcher failed: {clean.stderr[-500:]}")
        state = workdir / "killed"
        killed_at: list[int] = []
        while True:
            process = researcher_process.start(config, state, rounds, workdir / "final.npz")
            if len(killed_at) < kills:
                target = strike_after[len(killed_at)]

                def reached(
                    target: int = target, process: subprocess.Popen[bytes] = process
                ) -> bool:
                    return _rounds_done(state) >= target or process.poll() is not None

                wait_until(reached, f"round {target} of the researcher", timeout_s=120)
                time.sleep(rng.uniform(0.0, 0.3))
                if process.poll() is None:
                    process.kill()
                    process.wait()
                    killed_at.append(_rounds_done(state))
                    continue
            if process.wait(timeout=300) == 0:
                break
            stderr = process.stderr.read().decode() if process.stderr else ""
            return Row(
                f"researcher killed at random points {kills}x",
                "each resume ends bit-identical",
                f"a resumed run failed after {len(killed_at)} kill(s): {stderr.strip()[-300:]}",
                False,
                note="known: killed while nodes still train (resumable experiments work)",
            )
    final = dict(np.load(workdir / "final.npz"))
    reference = dict(np.load(workdir / "clean.npz"))
    identical = same_params(final, reference)
    return Row(
        f"researcher killed at random points {kills}x",
        "each resume ends bit-identical",
        f"{len(killed_at)} kills (after rounds {killed_at}), resumed each time; final "
        f"model bit-identical: {'yes' if identical else 'NO'}",
        identical and len(killed_at) == kills,
        note="" if identical else "known: killed while nodes still train",
    )
