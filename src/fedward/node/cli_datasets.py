"""``fedward node dataset add|list|show|delete``: the datasets this node offers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from fedward.node.cli_context import NodeCliContext, admin_name, pass_node
from fedward.node.cli_text import render_fields, short, when
from fedward.storage.node_records import DatasetRecord
from fedward.text_table import render_table


@click.group("dataset")
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
        record = state.services().datasets.add_from_file(from_file, by=admin_name())
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
            by=admin_name(),
        )
    click.echo(
        f"added dataset {record.dataset_id} ({record.name}): {record.sample_count} samples, "
        f"shape {record.shape}"
    )
    text_columns = text_feature_columns(record)
    if text_columns:
        click.secho(
            f"warning: column(s) {', '.join(text_columns)} hold text, but the shipped plans "
            "train on numeric features: a job fails on this dataset unless the researcher "
            "names such a column as the target (target_column; default: the last column, "
            f"{list(record.dtypes)[-1]!r}) or the plan converts it",
            fg="yellow",
            err=True,
        )


def text_feature_columns(record: DatasetRecord) -> list[str]:
    """Text columns of a CSV dataset other than its last one (the default target)."""
    if record.data_type != "csv" or not record.dtypes:
        return []
    *features, _target = record.dtypes
    return [name for name in features if record.dtypes[name] == "object"]


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
                    when(r.created_at),
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
        ("added", when(record.created_at)),
    ]
    if record.options:
        rows.append(("options", json.dumps(record.options)))
    return render_fields(rows)


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
            lines.extend(f"    {k}: {short(v)}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {short(value)}")
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
        datasets.delete(dataset_id, by=admin_name())
        click.echo(f"deleted dataset {dataset_id}")
        return
    if not yes:
        click.confirm("Delete every dataset from this node's registry?", abort=True)
    click.echo(f"deleted {datasets.delete_all(by=admin_name())} dataset(s)")
