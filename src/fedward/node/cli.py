"""``fedward node``: datasets, training plans, the job log, and ``start``.

Every command takes ids as arguments (no interactive pickers). Errors are raised as
``FedwardError``; ``fedward.cli.main`` prints them and picks the exit code.

- ``cli_datasets``  ``dataset add|list|show|delete``
- ``cli_plans``     ``plan register|update|approve|reject|delete|list|view``
- ``start_command`` ``start [--gpu | --gpu-only] [--gpu-num N] [--check]``
- ``cli_gc``        ``gc [--keep-h H] [--dry-run]`` (old job folders)
- here              ``status`` (settings and job isolation), ``jobs`` (jobs and plan
                    decisions) and ``audit`` (the whole security log)
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from fedward.node.cli_context import NodeCliContext, pass_node
from fedward.node.cli_datasets import dataset_group
from fedward.node.cli_gc import gc_command
from fedward.node.cli_plans import plan_group
from fedward.node.cli_text import short, when
from fedward.node.services import AuditEvent, JobRecord
from fedward.node.start_command import start
from fedward.text_table import render_table

__all__ = ["NodeCliContext", "node"]


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
node.add_command(dataset_group)
node.add_command(plan_group)
node.add_command(gc_command)


@node.command("status")
@pass_node
def status_command(state: NodeCliContext) -> None:
    """The node's settings and the isolation its training jobs would get on this host:
    each layer (namespaces, seccomp, Landlock, cgroup, limits, capabilities), the
    guarantees they give, and whether jobs are refused for a missing one; the privacy
    policy and the epsilon each researcher has spent on each dataset."""
    from fedward.node.jobs.isolation import WorkerIsolation
    from fedward.node.privacy_report import privacy_report
    from fedward.node.start_command import describe_settings

    config = state.load_config()
    isolation = WorkerIsolation.for_host(config.jobs.sandbox, config.jobs.require)
    click.echo(describe_settings(config, isolation))
    click.echo("\n".join(privacy_report(config).lines()))


@node.command("jobs")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--wide", is_flag=True, help="Full digests and messages.")
@pass_node
def jobs_command(state: NodeCliContext, limit: int, wide: bool) -> None:
    """The job log and the plan decisions: every training job (plan digest, researcher,
    dataset, start, end, outcome) and every approval decision, newest first."""
    services = state.services()
    records = services.jobs.list(limit)
    decisions = services.audit.list_events(limit, "plan_decision")
    width = 10_000 if wide else 1
    click.echo("jobs:")
    click.echo(_jobs_table(records, width) if records else "  no jobs yet")
    click.echo("")
    click.echo("plan decisions:")
    click.echo(_decisions_table(decisions, width) if decisions else "  no plan decisions yet")


def _jobs_table(records: list[JobRecord], width: int) -> str:
    headers = ["JOB", "EXPERIMENT", "ROUND", "RESEARCHER", "DATASET", "PLAN"]
    headers += ["STARTED", "ENDED", "SECONDS", "OUTCOME", "MESSAGE"]
    rows = [
        [
            r.job_id,
            r.experiment_id,
            str(r.round_index),
            r.researcher_id,
            r.dataset_id,
            short(r.plan_digest, 23 * width),
            when(r.started_at),
            when(r.finished_at),
            "" if r.duration_s is None else f"{r.duration_s:.1f}",
            r.outcome,
            short(r.message, 60 * width),
        ]
        for r in records
    ]
    return render_table(headers, rows)


def _decisions_table(events: list[AuditEvent], width: int) -> str:
    def detail(event: AuditEvent) -> str:
        text = event.detail if width > 1 else _DIGEST.sub(r"\1…", event.detail)
        return short(text, 120 * width)

    return render_table(
        ["AT", "BY", "PLAN", "DECISION"],
        [[when(e.at), e.actor, e.subject, detail(e)] for e in events],
    )


# A plan digest in an audit detail, shortened for the narrow listing.
_DIGEST = re.compile(r"\b([a-z0-9_]{3,16}:[0-9a-f]{16})[0-9a-f]{16,}\b")


@node.command("audit")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--kind", help="Only events of this kind, e.g. plan_decision, train_refused.")
@pass_node
def audit_command(state: NodeCliContext, limit: int, kind: str | None) -> None:
    """The security log: plan decisions, refused requests, dataset changes and jobs."""
    events = state.services().audit.list_events(limit, kind)
    click.echo(
        render_table(
            ["AT", "KIND", "ACTOR", "SUBJECT", "DETAIL"],
            [[when(e.at), e.kind, e.actor, e.subject, short(e.detail, 100)] for e in events],
        )
    )
