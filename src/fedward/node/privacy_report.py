"""The node's privacy policy and what each researcher has spent, for people to read
(``fedward node status``, the GUI's dashboard)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedward.config.model import NodeConfig
from fedward.node.privacy_ledger import PrivacyLedger, SpentBudget


@dataclass(frozen=True)
class PrivacyReport:
    rules: list[str]
    spent: list[SpentBudget]
    budget: float | None
    delta: float

    def lines(self) -> list[str]:
        rules = self.rules or ["none configured ([privacy] in the node's config)"]
        lines = ["privacy policy:", *(f"  {rule}" for rule in rules)]
        lines.append(
            f"privacy spent (epsilon at delta {self.delta:g}, per researcher and dataset):"
        )
        if not self.spent:
            lines.append("  nothing yet")
        for spent in self.spent:
            budget = f" of {self.budget:g}" if self.budget is not None else ""
            shown = f"{spent.epsilon:.3g}" if math.isfinite(spent.epsilon) else "unbounded"
            lines.append(
                f"  {spent.researcher_id} on {spent.dataset_id}: epsilon {shown}{budget} "
                f"({spent.rounds} round(s), {spent.experiments} experiment(s))"
            )
        return lines


def privacy_report(config: NodeConfig) -> PrivacyReport:
    """Reads the ledger if the daemon has written one; never creates it."""
    policy = config.privacy
    path = config.state_dir / "privacy.sqlite3"
    spent: list[SpentBudget] = []
    if path.exists():
        ledger = PrivacyLedger(path)
        try:
            spent = ledger.spent(policy.delta)
        finally:
            ledger.close()
    return PrivacyReport(policy.rules(), spent, policy.epsilon_budget, policy.delta)
