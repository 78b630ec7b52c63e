"""The node's state, as typed services shared by the daemon, the CLI and the GUI.

- ``datasets``    ``DatasetService``: add (validated), list, search by tags, preview, delete
- ``plans``       ``PlanService``: register/request/update, approve/reject, status by digest,
                  lineages of versions, default plans
- ``plan_review`` the canonical text reviewers read, and diffs between two versions
- ``heartbeat``   ``NodeHeartbeat``: the daemon says it is alive; the GUI reads it
- ``jobs``        ``JobService``: the job log (start, finish, durations)
- ``audit``       ``AuditService``: the security log (decisions, jobs, logins)
- ``factory``     ``open_node_services(database_path, data_root, ...) -> NodeServices``;
                  ``open_node_services_for(config)`` from a ``NodeConfig``

Records (``DatasetRecord``, ``PlanRecord``, ``JobRecord``, ``AuditEvent``) are plain frozen
values from ``fedward.storage.node_records``. No SQL here: services apply the rules and
stores (``fedward.storage``) keep the data.
"""

from fedward.node.services.audit import AuditService
from fedward.node.services.dataset_inspection import DatasetInspection, DatasetInspector
from fedward.node.services.datasets import DatasetService, parse_tags
from fedward.node.services.factory import (
    NodeServices,
    open_node_services,
    open_node_services_for,
)
from fedward.node.services.heartbeat import Heartbeat, NodeHeartbeat
from fedward.node.services.jobs import JobService
from fedward.node.services.plan_review import PlanDiff, canonical_source, plan_diff
from fedward.node.services.plans import SYSTEM, PlanService
from fedward.storage.node_records import (
    AuditEvent,
    DatasetRecord,
    JobOutcome,
    JobRecord,
    PlanKind,
    PlanRecord,
    PlanStatus,
    PlanStatusOrUnknown,
)

__all__ = [
    "SYSTEM",
    "AuditEvent",
    "AuditService",
    "DatasetInspection",
    "DatasetInspector",
    "DatasetRecord",
    "DatasetService",
    "Heartbeat",
    "JobOutcome",
    "JobRecord",
    "JobService",
    "NodeHeartbeat",
    "NodeServices",
    "PlanDiff",
    "PlanKind",
    "PlanRecord",
    "PlanService",
    "PlanStatus",
    "PlanStatusOrUnknown",
    "canonical_source",
    "open_node_services",
    "open_node_services_for",
    "parse_tags",
    "plan_diff",
]
