"""``fedward node``: datasets, training plans, the job log, and ``start``.

Every command takes ids as arguments (no interactive pickers). Errors are raised as
``FedwardError``; ``fedward.cli.main`` prints them and picks the exit code.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import click

from fedward.config.loader import load_node_config
from fedward.config.model import NodeConfig
from fedward.errors import PlanError
from fedward.node.services import NodeServices, open_node_services
from fedward.node.start_command import start
from fedward.storage.node_records import PLAN_STATUSES, DatasetRecord, PlanRecord, PlanStatus


@dataclass
class NodeCliContext:
    """What ``fedward node`` options decided; sub-commands load config and services lazily."""

    config_path: Path | None = None
    state_dir: Path | None = None
    node_id: str | None = None
    _config: NodeConfig | None = field(default=None, repr=False)
    _services: NodeServices | None = field(default=None, repr=False)

    def load_config(self) -> NodeConfig:
        if self._config is None:
            self._config = load_node_config(
                self.config_path, node_id=self.node_id, state_dir=self.state_dir
            )
        return self._config

    def services(self) -> NodeServices:
        if self._services is None:
            config = self.load_config()
            config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._services = open_node_services(
                config.database_path,
                config.data_root,
                digest_algorithm=config.digest_algorithm,
                approval_required=config.approval_required,
            )
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.close()
            self._services = None


pass_node = click.make_pass_decorator(NodeCliContext)


def _admin() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "admin"


@click.group("node", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Node TOML configuration file.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the node keeps its database (overrides the config and FEDWARD_NODE_DIR).",
)
@click.option("--node-id", help="Node id (overrides the config and NODE_ID).")
@click.pass_context
def node(
    ctx: click.Context, config_path: Path | None, state_dir: Path | None, node_id: str | None
) -> None:
    """Run a node: datasets, training plans, jobs."""
    state = NodeCliContext(config_path=config_path, state_dir=state_dir, node_id=node_id)
    ctx.obj = state
    ctx.call_on_close(state.close)


node.add_command(start)


# --- datasets ---------------------------------------------------------------------------


@node.group("dataset")
def dataset_group() -> None:
    """Add, list, show and delete the datasets this node offers."""


@dataset_group.command("add")
@click.option("--type", "data_type", help="Dataset type: csv, images, mnist, medical-folder.")
@click.option("--path", "data_path", type=click.Path(path_type=Path), help="File or folder.")
@click.option("--name", help="Short name shown to researchers.")
@click.option("--tags", help="Comma-separated tags researchers search by, e.g. 'cancer,breast'.")
@click.option("--description", default="", help="Free text shown to researchers.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Type-specific option (value parsed as JSON when it can be); repeatable.",
)
@click.option(
    "--from-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file with data_type, path, name, tags, description, options.",
)
@pass_node
def dataset_add(
    state: NodeCliContext,
    data_type: str | None,
    data_path: Path | None,
    name: str | None,
    tags: str | None,
    description: str,
    options: Sequence[str],
    from_file: Path | None,
) -> None:
    """Add a dataset, after checking its path and content."""
    given = {"--type": data_type, "--path": data_path, "--name": name, "--tags": tags}
    if from_file is not None:
        extra = [flag for flag, value in given.items() if value is not None]
        if extra or options or description:
            raise click.UsageError("--from-file takes no other dataset option")
        record = state.services().datasets.add_from_file(from_file, by=_admin())
    elif data_type is None or data_path is None or name is None or tags is None:
        missing = [flag for flag, value in given.items() if value is None]
        raise click.UsageError(f"missing {', '.join(missing)} (or use --from-file)")
    else:
        record = state.services().datasets.add(
            data_type,
            data_path,
            name,
            tags,
            description,
            options=_parse_options(options),
            by=_admin(),
        )
    click.echo(
        f"added dataset {record.dataset_id} ({record.name}): {record.sample_count} samples, "
        f"shape {record.shape}"
    )


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


@dataset_group.command("list")
@pass_node
def dataset_list(state: NodeCliContext) -> None:
    """List every dataset."""
    records = state.services().datasets.list()
    if not records:
        click.echo("no datasets; add one with 'fedward node dataset add'")
        return
    click.echo(
        render_table(
            ["ID", "NAME", "TYPE", "TAGS", "SAMPLES", "SHAPE", "ADDED"],
            [
                [
                    r.dataset_id,
                    r.name,
                    r.data_type,
                    ",".join(r.tags),
                    str(r.sample_count),
                    "x".join(map(str, r.shape)),
                    _when(r.created_at),
                ]
                for r in records
            ],
        )
    )


@dataset_group.command("show")
@click.argument("dataset_id")
@pass_node
def dataset_show(state: NodeCliContext, dataset_id: str) -> None:
    """Show one dataset and a preview of its content."""
    datasets = state.services().datasets
    record = datasets.get(dataset_id)
    click.echo(_describe_dataset(record))
    preview = datasets.preview(dataset_id)
    click.echo("preview:")
    click.echo(_render_preview(preview))


def _describe_dataset(record: DatasetRecord) -> str:
    rows = [
        ("id", record.dataset_id),
        ("name", record.name),
        ("type", record.data_type),
        ("tags", ", ".join(record.tags)),
        ("description", record.description),
        ("path", str(record.path)),
        ("samples", str(record.sample_count)),
        ("shape", str(record.shape)),
        ("added", _when(record.created_at)),
    ]
    if record.options:
        rows.append(("options", json.dumps(record.options)))
    return "\n".join(f"{key + ':':<13}{value}" for key, value in rows)


def _render_preview(preview: dict[str, Any]) -> str:
    lines: list[str] = []
    columns, rows = preview.get("columns"), preview.get("rows")
    if isinstance(columns, list) and isinstance(rows, list):
        table = render_table([str(c) for c in columns], [[str(v) for v in row] for row in rows])
        lines.extend("  " + line for line in table.splitlines())
    for key, value in preview.items():
        if key in ("columns", "rows") and columns is not None and rows is not None:
            continue
        if isinstance(value, dict) and value:
            lines.append(f"  {key}:")
            lines.extend(f"    {k}: {_short(v)}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {_short(value)}")
    return "\n".join(lines)


@dataset_group.command("delete")
@click.argument("dataset_id", required=False)
@click.option("--all", "delete_all", is_flag=True, help="Delete every dataset.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation with --all.")
@pass_node
def dataset_delete(
    state: NodeCliContext, dataset_id: str | None, delete_all: bool, yes: bool
) -> None:
    """Delete one dataset from the registry (the files stay where they are)."""
    datasets = state.services().datasets
    if delete_all == (dataset_id is not None):
        raise click.UsageError("give either a DATASET_ID or --all")
    if dataset_id is not None:
        datasets.delete(dataset_id, by=_admin())
        click.echo(f"deleted dataset {dataset_id}")
        return
    if not yes:
        click.confirm("Delete every dataset from this node's registry?", abort=True)
    click.echo(f"deleted {datasets.delete_all(by=_admin())} dataset(s)")


# --- training plans ---------------------------------------------------------------------


@node.group("plan")
def plan_group() -> None:
    """Register, review and approve the training plans that may run here."""


def _read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path} is not UTF-8 text") from exc
    except OSError as exc:
        raise PlanError(f"cannot read {path}: {exc.strerror}") from exc


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
    """Register a training plan from a Python file (pending until approved)."""
    record = state.services().plans.register(
        _read_source(source_file), class_name, name, description, by=_admin(), approve=approve
    )
    click.echo(f"registered plan {record.plan_id} ({record.status}) {record.digest}")


@plan_group.command("update")
@click.argument("plan_id")
@click.argument("source_file", type=click.Path(dir_okay=False, path_type=Path))
@pass_node
def plan_update(state: NodeCliContext, plan_id: str, source_file: Path) -> None:
    """Replace a plan's code: a new pending version; the old one stops authorising."""
    record = state.services().plans.update(plan_id, _read_source(source_file), by=_admin())
    click.echo(f"plan {plan_id} updated: new version {record.plan_id} (pending) {record.digest}")


@plan_group.command("approve")
@click.argument("plan_id")
@click.option("--notes", default="", help="Why (shown to the researcher).")
@click.option("--by", "actor", help="Who decides (default: your user name).")
@pass_node
def plan_approve(state: NodeCliContext, plan_id: str, notes: str, actor: str | None) -> None:
    """Approve a plan: jobs with exactly this code may run."""
    record = state.services().plans.approve(plan_id, actor or _admin(), notes)
    click.echo(f"plan {record.plan_id} approved")


@plan_group.command("reject")
@click.argument("plan_id")
@click.option("--notes", required=True, help="Why (shown to the researcher).")
@click.option("--by", "actor", help="Who decides (default: your user name).")
@pass_node
def plan_reject(state: NodeCliContext, plan_id: str, notes: str, actor: str | None) -> None:
    """Reject a plan; researchers see the notes."""
    record = state.services().plans.reject(plan_id, actor or _admin(), notes)
    click.echo(f"plan {record.plan_id} rejected")


@plan_group.command("delete")
@click.argument("plan_id")
@pass_node
def plan_delete(state: NodeCliContext, plan_id: str) -> None:
    """Delete a plan version (its digest becomes unknown)."""
    state.services().plans.delete(plan_id, by=_admin())
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
            ["ID", "NAME", "CLASS", "KIND", "STATUS", "DECIDED BY", "DIGEST"],
            [
                [
                    r.plan_id,
                    r.name,
                    r.class_name,
                    r.kind,
                    r.status,
                    r.decided_by or "",
                    _short(r.digest, 23),
                ]
                for r in records
            ],
        )
    )


@plan_group.command("view")
@click.argument("plan_id")
@pass_node
def plan_view(state: NodeCliContext, plan_id: str) -> None:
    """Show a plan's status, history and source."""
    record = state.services().plans.get(plan_id)
    click.echo(_describe_plan(record))
    click.echo("-" * 72)
    click.echo(record.source.rstrip("\n"))


def _describe_plan(record: PlanRecord) -> str:
    rows = [
        ("id", record.plan_id),
        ("name", record.name),
        ("class", record.class_name),
        ("kind", record.kind),
        ("status", record.status),
        ("digest", record.digest),
        ("created", _when(record.created_at)),
        ("decided by", record.decided_by or ""),
        ("decided at", _when(record.decided_at) if record.decided_at else ""),
        ("notes", record.notes),
        ("researcher", record.researcher_id or ""),
        ("description", record.description),
        ("previous", record.previous_plan_id or ""),
    ]
    return "\n".join(f"{key + ':':<13}{value}" for key, value in rows if value)


# --- logs ----------------------------------------------------------------------------------


@node.command("jobs")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@pass_node
def jobs_command(state: NodeCliContext, limit: int) -> None:
    """The job log: every training job, newest first."""
    records = state.services().jobs.list(limit)
    if not records:
        click.echo("no jobs yet")
        return
    click.echo(
        render_table(
            [
                "JOB",
                "EXPERIMENT",
                "ROUND",
                "RESEARCHER",
                "DATASET",
                "PLAN",
                "STARTED",
                "SECONDS",
                "OUTCOME",
                "MESSAGE",
            ],
            [
                [
                    r.job_id,
                    r.experiment_id,
                    str(r.round_index),
                    r.researcher_id,
                    r.dataset_id,
                    _short(r.plan_digest, 23),
                    _when(r.started_at),
                    "" if r.duration_s is None else f"{r.duration_s:.1f}",
                    r.outcome,
                    _short(r.message, 60),
                ]
                for r in records
            ],
        )
    )


@node.command("audit")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--kind", help="Only events of this kind, e.g. plan_decision.")
@pass_node
def audit_command(state: NodeCliContext, limit: int, kind: str | None) -> None:
    """The security log: plan decisions, dataset changes and jobs, newest first."""
    events = state.services().audit.list_events(limit, kind)
    click.echo(
        render_table(
            ["AT", "KIND", "ACTOR", "SUBJECT", "DETAIL"],
            [[_when(e.at), e.kind, e.actor, e.subject, _short(e.detail, 100)] for e in events],
        )
    )


# --- text rendering ------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; newlines inside cells become spaces."""
    cells = [[" ".join(str(v).split()) for v in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _when(moment: datetime) -> str:
    """Local time: what the admin's clock on the wall says."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
