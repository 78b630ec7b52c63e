"""Who may do what in the GUI: three roles, each a superset of the one before.

- ``viewer``   reads the dashboard, datasets, training plans and jobs
- ``approver`` also approves, rejects and registers training plans, and reads the security log
- ``admin``    also adds and deletes datasets, deletes plans and manages users

Pages ask for a ``Permission``, never for a role name, so the table below is the only
place that decides.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, get_args

from fedward.errors import ValidationError

Role = Literal["viewer", "approver", "admin"]
ROLES: tuple[str, ...] = get_args(Role)


class Permission(Enum):
    VIEW = "view"
    DECIDE_PLANS = "decide_plans"
    REGISTER_PLANS = "register_plans"
    READ_SECURITY_LOG = "read_security_log"
    MANAGE_DATASETS = "manage_datasets"
    DELETE_PLANS = "delete_plans"
    MANAGE_USERS = "manage_users"


_VIEWER = frozenset({Permission.VIEW})
_APPROVER = _VIEWER | {
    Permission.DECIDE_PLANS,
    Permission.REGISTER_PLANS,
    Permission.READ_SECURITY_LOG,
}
_ADMIN = frozenset(Permission)

PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": _VIEWER,
    "approver": _APPROVER,
    "admin": _ADMIN,
}


def validate_role(value: object) -> Role:
    if value not in ROLES:
        raise ValidationError(f"unknown role {value!r}", hint="one of " + ", ".join(ROLES))
    return value  # type: ignore[return-value]


def allows(role: str, permission: Permission) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())
