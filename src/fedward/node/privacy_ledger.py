"""What this node's data has spent of its privacy, per researcher and dataset.

Each update the node sends under central DP is one ``PrivacyEvent`` (written before the
update leaves the node, so a failure afterwards never under-counts). Epsilon is
recomputed from the events by the accountant (``fedward.privacy.accounting``), at the
node policy's delta. The ledger is its own SQLite file in the node's state folder,
which no job worker can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedward.privacy.accounting import PrivacyEvent, epsilon
from fedward.sqlite_file import SqliteFile
from fedward.storage.node_records import utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS privacy_spend (
    spend_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    researcher_id TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    round_index INTEGER NOT NULL,
    noise_multiplier REAL NOT NULL,
    sample_rate REAL NOT NULL,
    steps INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS privacy_spend_by_owner ON privacy_spend (researcher_id, dataset_id);
"""


@dataclass(frozen=True)
class SpentBudget:
    researcher_id: str
    dataset_id: str
    experiments: int
    rounds: int
    epsilon: float


class PrivacyLedger(SqliteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, what="privacy ledger")
        with self.write() as connection:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> PrivacyLedger:
        return cls(state_dir / "privacy.sqlite3")

    def record(
        self,
        researcher_id: str,
        dataset_id: str,
        experiment_id: str,
        round_index: int,
        event: PrivacyEvent,
    ) -> None:
        with self.write() as connection:
            connection.execute(
                "INSERT INTO privacy_spend (at, researcher_id, dataset_id, experiment_id, "
                "round_index, noise_multiplier, sample_rate, steps) VALUES (?,?,?,?,?,?,?,?)",
                (
                    utc_now().isoformat(),
                    researcher_id,
                    dataset_id,
                    experiment_id,
                    round_index,
                    event.noise_multiplier,
                    event.sample_rate,
                    event.steps,
                ),
            )

    def events(
        self, researcher_id: str, dataset_id: str, experiment_id: str | None = None
    ) -> list[PrivacyEvent]:
        query = (
            "SELECT noise_multiplier, sample_rate, steps FROM privacy_spend "
            "WHERE researcher_id = ? AND dataset_id = ?"
        )
        args: tuple[str, ...] = (researcher_id, dataset_id)
        if experiment_id is not None:
            query += " AND experiment_id = ?"
            args += (experiment_id,)
        with self.read() as connection:
            rows = connection.execute(query + " ORDER BY spend_id", args).fetchall()
        return [PrivacyEvent(row[0], row[1], row[2]) for row in rows]

    def spent(self, delta: float) -> list[SpentBudget]:
        """Epsilon spent so far by each researcher on each dataset, at ``delta``."""
        with self.read() as connection:
            owners = connection.execute(
                "SELECT researcher_id, dataset_id, COUNT(DISTINCT experiment_id), COUNT(*) "
                "FROM privacy_spend GROUP BY researcher_id, dataset_id "
                "ORDER BY researcher_id, dataset_id"
            ).fetchall()
        return [
            SpentBudget(r, d, experiments, rounds, epsilon(self.events(r, d), delta))
            for r, d, experiments, rounds in owners
        ]
