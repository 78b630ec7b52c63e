"""``fedward node plan register|update|approve|reject|delete|list|view|diff``.

``register`` and ``update`` read a Python file the way a researcher's ``Experiment``
sends a plan: the file's imports and the named class (``plan_files``). Registering the
researcher's own file therefore approves exactly the digest their requests carry, even
when the file also holds a docstring or a script.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from fedward.errors import NotFound, PlanError
from fedward.node.cli_context import NodeCliContext, admin_name, pass_node
from fedward.node.cli_text import render_fields, short, when
from fedward.node.plan_files import plan_source_from_text
from fedward.node.services.plan_review import canonical_source, plan_diff
from fedward.node.services.plans import APPROVED
from fedward.storage.node_records import PLAN_STATUSES, PlanRecord, PlanStatus
from fedward.text_table import render_table


@click.group("plan")
def plan_group() -> None:
    """Register, review and approve the training plans that may run here."""


def _read_source(path: Path, class_name: str) -> str:
    """The plan ``class_name`` in ``path``, as a researcher would send it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path} is not UTF-8 text") from exc
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror}") from exc
    return plan_source_from_text(text, class_name, str(path))


@plan_group.command("register")
@click.argument("source_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--class", "class_name", required=True, help="Name of the plan class in the file.")
@click.option("--name", required=True, help="Name to list the plan under.")
@click.option("--description", default="", help="What the plan does.")
@click.option("--approve", is_flag=True, help="Approve it at once.")
@pass_node
def plan_register(
    state: NodeCliContext,
    source_file: Path,
    class_name: str,
    name: str,
    description: str,
    approve: bool,
) -> None:
    """Register the plan class CLASS of a Python file (pending until approved)."""
    record = state.services().plans.register(
        _read_source(source_file, class_name),
        class_name,
        name,
        description,
        by=admin_name(),
        approve=approve,
    )
    click.echo(f"registered plan {record.plan_id} ({record.status}) {record.digest}")


@plan_group.command("update")
@click.argument("plan_id")
@click.argument("source_file", type=click.Path(dir_okay=False, path_type=Path))
@pass_node
def plan_update(state: NodeCliContext, plan_id: str, source_file: Path) -> None:
    """Replace a plan's code: a new pending version; the old one stops authorising."""
    plans = state.services().plans
    source = _read_source(source_file, plans.get(plan_id).class_name)
    record = plans.update(plan_id, source, by=admin_name())
    click.echo(f"plan {plan_id} updated: new version {record.plan_id} (pending) {record.digest}")


@plan_group.command("approve")
@click.argument("plan_id")
@click.option("--notes", default="", help="Why (shown to the researcher).")
@click.option("--by", "actor", help="Who decides (default: your user name).")
@pass_node
def plan_approve(state: NodeCliContext, plan_id: str, notes: str, actor: str | None) -> None:
    """Approve a plan: jobs with exactly this code may run."""
    record = state.services().plans.approve(plan_id, actor or admin_name(), notes)
    click.echo(f"plan {record.plan_id} approved")


@plan_group.command("reject")
@click.argument("plan_id")
@click.option("--notes", required=True, help="Why (shown to the researcher).")
@click.option("--by", "actor", help="Who decides (default: your user name).")
@pass_node
def plan_reject(state: NodeCliContext, plan_id: str, notes: str, actor: str | None) -> None:
    """Reject a plan; researchers see the notes."""
    record = state.services().plans.reject(plan_id, actor or admin_name(), notes)
    click.echo(f"plan {record.plan_id} rejected")


@plan_group.command("delete")
@click.argument("plan_id")
@pass_node
def plan_delete(state: NodeCliContext, plan_id: str) -> None:
    """Delete a plan version (its digest becomes unknown)."""
    state.services().plans.delete(plan_id, by=admin_name())
    click.echo(f"deleted plan {plan_id}")


@plan_group.command("list")
@click.option("--status", type=click.Choice(PLAN_STATUSES), help="Only plans with this status.")
@pass_node
def plan_list(state: NodeCliContext, status: str | None) -> None:
    """List training plans."""
    records = state.services().plans.list(cast(PlanStatus | None, status))
    if not records:
        click.echo("no training plans")
        return
    click.echo(
        render_table(
            ["ID", "NAME", "VERSION", "KIND", "STATUS", "WRITTEN BY", "DECIDED BY", "DIGEST"],
            [
                [
                    r.plan_id,
                    r.name,
                    f"v{r.version}",
                    r.kind,
                    r.review_state,
                    r.created_by,
                    r.decided_by or "",
                    short(r.digest, 23),
                ]
                for r in sorted(records, key=lambda r: (r.name, r.lineage_id, r.version))
            ],
        )
    )


@plan_group.command("view")
@click.argument("plan_id")
@click.option("--original", is_flag=True, help="The text as sent, not the text that runs.")
@pass_node
def plan_view(state: NodeCliContext, plan_id: str, original: bool) -> None:
    """Show a plan's status, history and the source that runs."""
    record = state.services().plans.get(plan_id)
    click.echo(_describe_plan(record))
    click.echo("-" * 72)
    click.echo((record.source if original else canonical_source(record)).rstrip("\n"))


@plan_group.command("diff")
@click.argument("plan_id")
@click.option(
    "--against",
    default=APPROVED,
    show_default=True,
    help="'approved' (the version of this plan approved now, else the previous one), "
    "'previous', or another plan id.",
)
@pass_node
def plan_diff_command(state: NodeCliContext, plan_id: str, against: str) -> None:
    """What a plan version changes, in the text that runs (comments and layout ignored)."""
    plans = state.services().plans
    record = plans.get(plan_id)
    base = plans.review_base(record, against)
    if base is None:
        raise NotFound(
            f"plan {record.plan_id} is version 1 of {record.name!r}: nothing to compare with",
            hint="'fedward node plan view' shows its source",
        )
    diff = plan_diff(base, record)
    click.echo(f"{diff.added} added, {diff.removed} removed lines")
    if diff.text:
        click.echo(diff.text.rstrip("\n"))


def _describe_plan(record: PlanRecord) -> str:
    rows = [
        ("id", record.plan_id),
        ("name", record.name),
        ("class", record.class_name),
        ("version", f"v{record.version}"),
        ("kind", record.kind),
        ("status", record.review_state),
        ("digest", record.digest),
        ("created", when(record.created_at)),
        ("decided by", record.decided_by or ""),
        ("decided at", when(record.decided_at) if record.decided_at else ""),
        ("notes", record.notes),
        ("written by", record.created_by),
        ("requested by", record.researcher_id or ""),
        ("description", record.description),
        ("previous", record.previous_plan_id or ""),
        ("superseded by", record.superseded_by or ""),
    ]
    return render_fields(rows)
