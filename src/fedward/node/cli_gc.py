"""``fedward node gc``: delete job folders of experiments that had no job for a while."""

from __future__ import annotations

import click

from fedward.node.cli_context import NodeCliContext, pass_node


@click.command("gc")
@click.option(
    "--keep-h",
    type=click.FloatRange(min=0),
    default=None,
    help="Delete folders with no job for this many hours [default: the config's "
    "[retention] keep_job_folders_h, 24].",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@pass_node
def gc_command(state: NodeCliContext, keep_h: float | None, dry_run: bool) -> None:
    """Delete job folders (jobs/<experiment>/) of experiments idle for KEEP_H hours.

    Folders of experiments with a job still running are kept. A running node does this
    by itself every [retention] collect_every_s."""
    from fedward.node.services.retention import collect_job_folders, running_experiments

    config = state.load_config()
    hours = config.retention.keep_job_folders_h if keep_h is None else keep_h
    busy = running_experiments(state.services().jobs)
    result = collect_job_folders(config.jobs_dir, hours * 3600, busy, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.folders} job folder(s), {result.bytes / (1 << 20):.1f} MiB; "
        f"kept {result.kept}"
    )
