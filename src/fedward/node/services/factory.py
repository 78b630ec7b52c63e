"""``open_node_services``: the one place that picks SQLite for the node's services.

``open_node_services_for(config)`` is how the daemon, the node CLI and the GUI open them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedward.config.model import NodeConfig
from fedward.node.services.audit import AuditService
from fedward.node.services.dataset_inspection import DatasetInspector
from fedward.node.services.datasets import DatasetService
from fedward.node.services.jobs import JobService
from fedward.node.services.plans import PlanService
from fedward.storage.sqlite_audit import SqliteAuditStore
from fedward.storage.sqlite_database import SqliteDatabase
from fedward.storage.sqlite_datasets import SqliteDatasetStore
from fedward.storage.sqlite_jobs import SqliteJobStore
from fedward.storage.sqlite_plans import SqlitePlanStore


@dataclass(frozen=True)
class NodeServices:
    datasets: DatasetService
    plans: PlanService
    jobs: JobService
    audit: AuditService
    database: SqliteDatabase

    def close(self) -> None:
        """Close this process's connections to the database."""
        self.database.close()


def open_node_services(
    database_path: Path,
    data_root: Path | None,
    digest_algorithm: str = "sha256",
    approval_required: bool = True,
    *,
    inspector: DatasetInspector | None = None,
) -> NodeServices:
    """Open (creating and migrating if needed) the node database and build every service."""
    database = SqliteDatabase(database_path)
    plans = PlanService(SqlitePlanStore(database), digest_algorithm, approval_required)
    # A changed digest_algorithm must not leave approved plans unreachable.
    plans.rehash()
    return NodeServices(
        datasets=DatasetService(SqliteDatasetStore(database), data_root, inspector=inspector),
        plans=plans,
        jobs=JobService(SqliteJobStore(database)),
        audit=AuditService(SqliteAuditStore(database)),
        database=database,
    )


def open_node_services_for(config: NodeConfig) -> NodeServices:
    """The services of the node ``config`` describes; creates its state directory (0700)."""
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return open_node_services(
        config.database_path,
        config.data_root,
        digest_algorithm=config.digest_algorithm,
        approval_required=config.approval_required,
    )
