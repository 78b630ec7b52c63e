"""``fedward uploads``: run the upload server and manage its peers' tokens."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

from fedward.errors import NotFound
from fedward.uploads.quotas import DEFAULT_PEER_QUOTA_MB, MIB, StorageQuotas
from fedward.uploads.retention import DEFAULT_INTERVAL_S, DEFAULT_KEEP_FETCHED_S

_TOKENS_HELP = "The tokens file (JSON peer id -> token hash, mode 0600)."

tokens_option = click.option(
    "--tokens",
    "tokens_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=_TOKENS_HELP,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def uploads() -> None:
    """The upload server (restful in the seed): content-addressed blobs behind bearer tokens."""


@uploads.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one; the URL is printed).",
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where blobs and their reader lists are kept (created if missing).",
)
@click.option(
    "--tokens",
    "tokens_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=_TOKENS_HELP + " Re-read whenever it changes.",
)
@click.option(
    "--max-blob-mb",
    default=1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest blob accepted, in MiB.",
)
@click.option(
    "--peer-quota-mb",
    default=DEFAULT_PEER_QUOTA_MB,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most a peer (one token) may keep stored, in MiB: the blobs it uploaded that "
    "retention has not deleted, and its uploads in progress. Past it an upload is "
    "refused (507).",
)
@click.option(
    "--total-quota-mb",
    type=click.IntRange(min=1),
    help="Most the server keeps stored, in MiB, every peer together (uploads in "
    "progress included).  [default: what is stored at start plus 90% of the free space "
    "of the data dir's file system then]",
)
@click.option(
    "--keep-fetched-s",
    default=DEFAULT_KEEP_FETCHED_S,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delete a parameters blob this long after every reader fetched it (a download "
    "to a file counts once its reader confirms it kept it).",
)
@click.option(
    "--keep-idle-h",
    default=168.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delete any blob nobody uploaded or fetched for this long (hours).",
)
@click.option(
    "--gc-interval-s",
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    type=click.FloatRange(min=0),
    help="How often to look for blobs to delete; 0 keeps every blob.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="The server's log level (stderr).",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log one line per request.",
)
def serve(
    host: str,
    port: int,
    data_dir: Path,
    tokens_file: Path,
    max_blob_mb: int,
    peer_quota_mb: int,
    total_quota_mb: int | None,
    keep_fetched_s: float,
    keep_idle_h: float,
    gc_interval_s: float,
    log_level: str,
    access_log: bool,
) -> None:
    """Run the upload server in the foreground until interrupted.

    Blobs no longer needed are deleted as it runs (see 'fedward uploads gc')."""
    from fedward.uploads.app import create_app
    from fedward.uploads.http_server import BlobHttpServer, serve_in_thread
    from fedward.uploads.retention import BackgroundCollector, RetentionPolicy
    from fedward.uploads.server import bind_listener, listener_url

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("fedward.uploads.access").setLevel(
        logging.INFO if access_log else logging.WARNING
    )

    quotas = StorageQuotas(
        peer_bytes=peer_quota_mb * MIB,
        total_bytes=None if total_quota_mb is None else total_quota_mb * MIB,
    )
    app = create_app(data_dir, tokens_file, max_blob_mb * MIB, quotas)
    # On stderr: stdout's first line is the address, and the total's default is
    # worked out here, from the disk, so the operator should see what it came to.
    click.echo(
        f"storage quotas: {peer_quota_mb} MiB per peer, "
        f"{app.space.quotas.total_limit // MIB} MiB in all",
        err=True,
    )
    if gc_interval_s > 0:
        policy = RetentionPolicy(keep_fetched_s, keep_idle_h * 3600)
        BackgroundCollector(app.space, policy, gc_interval_s).start()
    if not tokens_file.exists():
        click.echo(
            f"warning: {tokens_file} does not exist yet; nobody can connect until "
            f"'fedward uploads token add PEER --tokens {tokens_file}'",
            err=True,
        )
    sock = bind_listener(host, port)
    # One line on stdout, so a parent process that asked for port 0 learns the address.
    click.echo(f"fedward uploads listening on {listener_url(sock)}")
    sys.stdout.flush()
    server = BlobHttpServer(app, sock)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    thread = serve_in_thread(server)
    stopping.wait()
    server.stop()  # requests in progress get a few seconds to end
    thread.join(10)


@uploads.command("gc")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The upload server's data dir.",
)
@click.option(
    "--keep-fetched-s",
    default=DEFAULT_KEEP_FETCHED_S,
    show_default=True,
    type=click.FloatRange(min=0),
)
@click.option("--keep-idle-h", default=168.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
def gc(data_dir: Path, keep_fetched_s: float, keep_idle_h: float, dry_run: bool) -> None:
    """Delete blobs no longer needed: parameters every reader fetched (KEEP_FETCHED_S ago),
    and any blob unused for KEEP_IDLE_H hours. A running server does this by itself."""
    from fedward.uploads.blob_space import DiskBlobSpace
    from fedward.uploads.retention import RetentionPolicy, collect

    policy = RetentionPolicy(keep_fetched_s, keep_idle_h * 3600)
    result = collect(DiskBlobSpace(data_dir, server=False), policy, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.blobs} blob(s), {result.bytes / (1 << 20):.1f} MiB; kept {result.kept}"
    )


@uploads.group()
def token() -> None:
    """Give peers tokens and revoke them (the server notices without a restart)."""


@token.command("add")
@click.argument("peer_id")
@tokens_option
def token_add(peer_id: str, tokens_file: Path) -> None:
    """Make a new token for PEER_ID (replacing its old one) and print it once."""
    from fedward.uploads.tokens import add_token

    click.echo(add_token(tokens_file, peer_id))


@token.command("remove")
@click.argument("peer_id")
@tokens_option
def token_remove(peer_id: str, tokens_file: Path) -> None:
    """Revoke PEER_ID's token."""
    from fedward.uploads.tokens import remove_token

    if not remove_token(tokens_file, peer_id):
        raise NotFound(f"peer {peer_id!r} has no uploads token in {tokens_file}")
    click.echo(f"revoked the uploads token of {peer_id}", err=True)


@token.command("list")
@tokens_option
def token_list(tokens_file: Path) -> None:
    """Print the peers that hold a token, one per line."""
    from fedward.uploads.tokens import read_token_hashes

    for peer_id in sorted(read_token_hashes(tokens_file)):
        click.echo(peer_id)
