"""A check, what it found, and the report of a whole run.

A check is a name and a function that returns an ``Outcome``: passed, failed (with the fix,
in one line an operator can act on) or skipped (it does not apply, or a check it needs
failed, so its own failure would only repeat that one). ``run_checks`` runs them in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from fedward.errors import FedwardError

Status = Literal["ok", "fail", "skip"]
_MARKS: dict[Status, str] = {"ok": "✔", "fail": "✘", "skip": "○"}


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str
    fix: str = ""


def passed(detail: str) -> Outcome:
    return Outcome("ok", detail)


def failed(detail: str, fix: str) -> Outcome:
    return Outcome("fail", detail, fix)


def skipped(detail: str) -> Outcome:
    return Outcome("skip", detail)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], Outcome]
    needs: tuple[str, ...] = ()  # earlier checks whose failure makes this one moot


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str


@dataclass(frozen=True)
class Report:
    role: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.status != "fail" for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def as_json(self) -> str:
        findings = [asdict(f) for f in self.findings]
        return json.dumps({"role": self.role, "ok": self.ok, "checks": findings}, indent=1)

    def as_table(self) -> str:
        width = max((len(f.check) for f in self.findings), default=0)
        lines = [f"fedward doctor: {self.role}"]
        for finding in self.findings:
            lines.append(f"  {_MARKS[finding.status]}  {finding.check:<{width}}  {finding.detail}")
            if finding.status == "fail":
                lines.append(f"     {'':<{width}}  fix: {finding.fix}")
        failures = sum(f.status == "fail" for f in self.findings)
        ran = sum(f.status != "skip" for f in self.findings)
        lines.append(
            f"all {ran} checks passed" if not failures else f"{failures} of {ran} checks failed"
        )
        return "\n".join(lines)


def run_checks(role: str, checks: Sequence[Check]) -> Report:
    findings: list[Finding] = []
    # Failed checks, and those skipped because of one: both block what needs them.
    blocked: dict[str, str] = {}
    for check in checks:
        blocking = [blocked[name] for name in check.needs if name in blocked]
        outcome = skipped(f"not checked: '{blocking[0]}' failed") if blocking else _run_one(check)
        if outcome.status == "fail":
            blocked[check.name] = check.name
        elif blocking:
            blocked[check.name] = blocking[0]
        findings.append(Finding(check.name, outcome.status, outcome.detail, outcome.fix))
    return Report(role, tuple(findings))


def _run_one(check: Check) -> Outcome:
    # The top of one check: whatever it raises is its finding, and the next check runs.
    try:
        return check.run()
    except FedwardError as exc:
        return failed(exc.message, exc.hint or "see the message")
    except Exception as exc:
        return failed(f"{type(exc).__name__}: {exc}", "report this as a fedward bug")
